"""The grader's side of the course, never given to students (the student kit leaves it out).

What decides the points (`python grading.py check COURSE_DIR ASSIGNMENT STUDENT`, run by `course.py grade` after
nbgrader has executed a submission): a fresh process that imports no student code. It draws the inputs now, runs
the student's answer cells in a sandbox -- a new interpreter (`python -I -S`) whose import path holds the standard
library and NumPy only (Keras too, never the course library, where a part needs it), under an audit hook no Python
code can remove -- and reads back only plain arrays (`allow_pickle=False`). For A3 Part 3 and A4 it loads the
weights the notebook saved into the course's own network, predicts every scored image and fresh hidden scenes again
and recomputes every metric. It holds the references, computes the points and writes them into nbgrader's gradebook
and the graded notebook, so nothing the kernel printed, displayed or raised changes them.

nbgrader also loads this module through `nbgrader_config.py`:
- `ScreenAnswers` reads every cell a student could write with Python's `ast` before the kernel runs and replaces a
  cell that tampers with other code (monkeypatching, `exec`, ...) by one that raises: a second line of defence.
- `HideHiddenTests` and `PercentPerDayLate` (the late penalty) shape the feedback and the score.
- `python grading.py --memory-gb G -f CONNECTION_FILE` starts an IPython kernel under a memory limit.
"""

from __future__ import annotations

import ast
import json
import math
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

COURSE_DIR = Path(__file__).resolve().parent

# Calls and names that change or inspect other code: no answer needs them.
FORBIDDEN_BUILTINS = frozenset({
    "setattr", "delattr", "getattr", "globals", "locals", "vars", "exec", "eval", "compile", "__import__",
    "get_ipython", "breakpoint", "__builtins__", "memoryview",
})
# Modules an answer may import (the set-up cell imports the rest); everything else is refused.
ALLOWED_IMPORTS = frozenset({"numpy", "math", "itertools", "functools", "collections", "typing", "dataclasses"})


@dataclass(frozen=True)
class AnswerRules:
    """What the answer cells of one assignment may not use, on top of the rules every assignment shares."""

    forbidden_names: frozenset[str] = frozenset()
    extra_imports: frozenset[str] = frozenset()
    allowed_attributes: dict[str, frozenset[str]] | None = None  # module name -> dotted attributes allowed
    only_passed_to: dict[str, str] | None = None  # name -> the only function it may be passed to


LIBRARY = frozenset({"pspnet_lib", "layers", "diagrams", "inference", "experiments", "viz", "widgets"})
RULES = {
    # Part answers in NumPy: no Keras convolution, no course library (layers is the grader's reference).
    "a1_dilated_convolutions": AnswerRules(forbidden_names=LIBRARY | {"keras", "tf", "tensorflow", "scipy", "torch"}),
    "a2_pyramid_pooling": AnswerRules(
        forbidden_names=LIBRARY | {"tf", "tensorflow", "scipy", "torch"},
        allowed_attributes={"keras": frozenset({"ops.image.resize", "ops.convert_to_numpy", "ops.convert_to_tensor"})},
    ),
    # The validation arrays only go to predict_ids and mean_iou: no training on them.
    "a3_train_pspnet": AnswerRules(forbidden_names=LIBRARY | {"metrics"}, extra_imports=frozenset({"keras", "tensorflow"}),
                                   only_passed_to={"val_images": "predict_ids", "val_labels": "mean_iou"}),
    "a4_ablation": AnswerRules(forbidden_names=LIBRARY - {"inference"}, extra_imports=frozenset({"keras", "tensorflow"})),
}


def _targets(node: ast.AST) -> Iterable[ast.AST]:
    """The assignment targets of a statement, unpacked from tuples and lists."""
    targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
    stack = [target for target in targets if target is not None]
    while stack:
        target = stack.pop()
        if isinstance(target, ast.Tuple | ast.List):
            stack.extend(target.elts)
        elif isinstance(target, ast.Starred):
            stack.append(target.value)
        else:
            yield target


def _dotted(node: ast.Attribute) -> tuple[str | None, str]:
    """(root name, dotted attribute path) of `a.b.c` -> ('a', 'b.c'); root None when it is not a plain name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return (node.id if isinstance(node, ast.Name) else None), ".".join(reversed(parts))


def _passed_to(node: ast.Name, function: str, parents: dict) -> bool:
    """True when `node` is a positional or keyword argument of a call of the plain name `function`."""
    parent = parents.get(node)
    if isinstance(parent, ast.keyword):
        parent = parents.get(parent)
    return isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id == function \
        and node is not parent.func


def _in_function(node: ast.AST, parents: dict) -> bool:
    """True when `node` lies inside a function (where `self.x = ...` sets an instance's attribute, not a module's)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return True
    return False


def _module_level_bindings(tree: ast.Module) -> set[str]:
    """Names a cell binds outside any function: assignments, imports, defs, for/with targets."""
    bound: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
            continue
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.For | ast.AsyncFor | ast.NamedExpr):
            bound |= {target.id for target in _targets(node) if isinstance(target, ast.Name)}
        if isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
            bound.add(node.optional_vars.id)
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        stack.extend(child for child in ast.iter_child_nodes(node) if not isinstance(child, ast.Lambda))
    return bound


def grader_names(cells: Iterable[tuple[str, bool]]) -> tuple[set[str], set[str]]:
    """(names the grader's cells bind at module level, functions its test cells define) from (source, is_test)."""
    bound, helpers = set(), set()
    for source, is_test in cells:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        if is_test:
            helpers |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
        else:
            bound |= _module_level_bindings(tree)
    return bound, helpers


def screen(source: str, rules: AnswerRules, protected: set[str], helpers: set[str]) -> list[str]:
    """Reasons why a student's cell may not run (empty when it may); `protected` names may not be rebound."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [f"the cell is not plain Python (line {error.lineno}: {error.msg}); IPython magics and ! are not allowed"]
    problems = []
    forbidden = FORBIDDEN_BUILTINS | rules.forbidden_names | helpers
    allowed_imports = ALLOWED_IMPORTS | rules.extra_imports
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    limited = rules.allowed_attributes or {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and (node.id in forbidden or node.id.startswith("_") and node.id != "_"):
            problems.append(f"uses `{node.id}`")
        elif isinstance(node, ast.Name) and node.id in (rules.only_passed_to or {}) and not _passed_to(
                node, rules.only_passed_to[node.id], parents):
            problems.append(f"uses `{node.id}` other than as an argument of `{rules.only_passed_to[node.id]}`")
        elif isinstance(node, ast.Name) and node.id in limited and not isinstance(parents.get(node), ast.Attribute):
            problems.append(f"uses `{node.id}` other than as {sorted(limited[node.id])}")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__"):
                problems.append(f"reaches the internals `{node.attr}`")
            elif isinstance(node.value, ast.Name) and node.value.id in limited:
                outer = node
                while isinstance(parents.get(outer), ast.Attribute):
                    outer = parents[outer]
                root, full = _dotted(outer)
                if not any(full == allowed or allowed.startswith(full + ".") for allowed in limited[root]):
                    problems.append(f"uses `{root}.{full}`")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            problems += [f"imports `{module}`" for module in modules if module.split(".")[0] not in allowed_imports]
        elif isinstance(node, ast.Global | ast.Nonlocal):
            problems += [f"declares `{name}` global" for name in node.names if name in protected]
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            for target in _targets(node) if not isinstance(node, ast.Delete) else node.targets:
                if isinstance(target, ast.Attribute) and not (_dotted(target)[0] == "self" and _in_function(node, parents)):
                    problems.append(f"assigns to the attribute `{ast.unparse(target)}`")
                elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute):
                    problems.append(f"assigns into `{ast.unparse(target.value)}`")
                elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id in protected:
                    problems.append(f"changes `{target.value.id}`, which the grader's cells define")
    problems += [f"rebinds `{name}`, which the grader's cells define" for name in _module_level_bindings(tree) & protected]
    return sorted(set(problems))


HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def hidden_region_removed(source: str) -> str:
    """`source` without its hidden test regions (markers included), with a line saying tests were hidden."""
    kept, hiding = [], False
    for line in source.splitlines():
        if line.strip() == HIDDEN_BEGIN:
            hiding = True
            kept.append("# (hidden tests ran here)")
        elif line.strip() == HIDDEN_END:
            hiding = False
        elif not hiding:
            kept.append(line)
    return "\n".join(kept)


def blocked_cell(grade_id: str, problems: list[str]) -> str:
    """The source that replaces a refused cell: it raises, naming the reasons, so its part scores zero."""
    reasons = "; ".join(problems)
    return f"raise RuntimeError({f'The grader refused cell {grade_id!r}: it {reasons}. This part scores zero.'!r})"


def grader_view(source_notebook) -> tuple[set[str], set[str]]:
    """(grade_ids of the grader's cells: tests and locked set-up, names the answer cells define) of a source notebook."""
    ids, answer_names = set(), set()
    for cell in source_notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code":
            continue
        if meta.get("solution"):
            try:
                answer_names |= _module_level_bindings(ast.parse(cell.source))
            except SyntaxError:
                pass
        elif meta.get("locked") or meta.get("grade"):
            ids.add(meta["grade_id"])
    return ids, answer_names


def screen_notebook(notebook, assignment: str, grader_ids: set[str], answer_names: set[str]) -> dict[str, list[str]]:
    """Replace every refused student cell of `notebook` (in place) by a raising cell; return the reasons by cell.

    A cell is the grader's only when its grade_id is one of `grader_ids` (from the source notebook), so a cell a
    student added with copied metadata is still screened. `answer_names` (what the answers define) may be rebound.
    """
    rules = RULES.get(assignment, AnswerRules())
    owned = [cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade_id") in grader_ids
             for cell in notebook.cells]
    grader_cells = [(cell.source, bool(cell.metadata.get("nbgrader", {}).get("grade")))
                    for cell, is_grader in zip(notebook.cells, owned, strict=True) if is_grader]
    protected, helpers = grader_names(grader_cells)
    protected -= answer_names
    refused = {}
    for index, (cell, is_grader) in enumerate(zip(notebook.cells, owned, strict=True)):
        if cell.cell_type == "code" and not is_grader:
            problems = screen(cell.source, rules, protected, helpers)
            if problems:
                grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {index}")
                refused[grade_id] = problems
                cell.source = blocked_cell(grade_id, problems)
    return refused


# ---------------------------------------------------------------------------------------------------------------
# The trusted checker. Scores come from here, never from the notebook's kernel: student code runs only to produce
# plain data (answers on inputs drawn now, saved weights and predictions), read back with allow_pickle=False; this
# process holds the references and decides the points. It imports no student code.

PERCENT_PER_DAY = 10.0  # late penalty: percent of the score lost per started day late
WORKER_TIMEOUT = 60.0  # seconds one part's answers may run in their sandbox
FORBIDDEN_IN_SANDBOX = ("pspnet_lib", "scipy", "torch", "jax", "sklearn", "cv2", "PIL", "ctypes", "_ctypes",
                        "subprocess", "multiprocessing", "_posixsubprocess", "IPython", "ipykernel")
BLOCKED_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                  "socket.connect", "socket.bind")

# Run by `python -I -S -c SANDBOX JOB_DIR`: the import system offers the standard library and what job.json's
# "path" holds (NumPy alone for NumPy-only parts); an audit hook, which no Python code can remove, refuses the
# modules and events above before any student code runs. Student cells then define their functions, the grader's
# overrides replace the earlier parts it builds on, and each call's result is saved as a plain array.
SANDBOX = r'''
import json, sys
job = sys.argv[1]
spec = json.load(open(job + "/job.json"))
sys.path[:] = [p for p in sys.path if p and "site-packages" not in p] + spec["path"]
import numpy
namespace = {"__name__": "__answers__"}
exec(spec["preamble"], namespace)
ALLOWED, DENIED, EVENTS = spec["allowed"], tuple(spec["denied"]), tuple(spec["events"])
def guard(event, args):
    if event == "import":
        name = str(args[0])
        top = name.split(".")[0]
        if name.startswith(DENIED) or top in DENIED or (ALLOWED is not None and top not in ALLOWED):
            raise ImportError(f"{name} is not available to answers while grading")
    elif event.startswith(EVENTS) or event.startswith("ctypes."):
        raise RuntimeError(f"{event} is not allowed while grading")
sys.addaudithook(guard)
import __future__
errors = {"cells": []}
for source in spec["cells"]:
    try:
        exec(compile(source, "<answer cell>", "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True), namespace)
    except BaseException as error:
        errors["cells"].append(f"{type(error).__name__}: {str(error)[:200]}")
exec(spec["overrides"], namespace)
inputs = numpy.load(job + "/inputs.npz", allow_pickle=False)
def argument(kind, key):
    value = inputs[key]
    if kind == "int":
        return int(value)
    if kind == "ints":
        return tuple(int(v) for v in value)
    if kind == "int_rows":
        return [tuple(int(v) for v in row) for row in value]
    if kind == "name":
        return namespace[str(value)]
    if kind == "transforms":
        return namespace["branch_transforms"](numpy.array(value))
    return numpy.array(value)
results = {}
for index, (function, kinds) in enumerate(spec["calls"]):
    try:
        value = namespace[function](*[argument(kind, f"{index}_{j}") for j, kind in enumerate(kinds)])
        array = numpy.array(value)
        if array.dtype == object:
            raise TypeError(f"returned {type(value).__name__}, which is not a number or an array of numbers")
        results[f"r{index}"] = array
    except BaseException as error:
        errors[str(index)] = f"{type(error).__name__}: {str(error)[:200]}"
numpy.savez(job + "/outputs.npz", **results)
json.dump(errors, open(job + "/errors.json", "w"))
'''


@dataclass
class Verdict:
    """Points of one test cell, decided here, and the checks that failed (kind of input, never the input itself)."""

    max_points: float
    failures: list[str]

    @property
    def points(self) -> float:
        """All or nothing, like an nbgrader test cell."""
        return 0.0 if self.failures else self.max_points


@dataclass
class Call:
    """One call of a student's function: its name and (kind, value) arguments (kinds: int, ints, int_rows, array, name)."""

    function: str
    arguments: list[tuple[str, object]]


@dataclass
class Outcome:
    """What a sandbox returned: each call's array (None when it failed) and error, and the cells that raised."""

    results: list
    errors: list
    cell_errors: list[str]


def numpy_only_path(workdir: Path) -> list[str]:
    """A folder holding NumPy alone (symbolic links to its installation), to be the sandbox's only extra path."""
    import numpy

    install = Path(numpy.__file__).resolve().parent
    folder = workdir / "numpy-only"
    folder.mkdir(exist_ok=True)
    for name in ("numpy", "numpy.libs"):
        if (install.parent / name).exists() and not (folder / name).exists():
            (folder / name).symlink_to(install.parent / name)
    return [str(folder)]


def run_sandboxed(cells: list[str], calls: list[Call], *, preamble: str = "import numpy as np",
                  overrides: str = "", numpy_only: bool = True, timeout: float | None = None,
                  extra_inputs: dict | None = None) -> Outcome:
    """Run student `cells`, then `calls`, in a fresh sandboxed interpreter; return plain arrays read back safely."""
    import subprocess
    import tempfile

    import numpy as np

    timeout = timeout or WORKER_TIMEOUT
    with tempfile.TemporaryDirectory(prefix="pspnet-sandbox-") as job:
        workdir = Path(job)
        path = numpy_only_path(workdir) if numpy_only else [p for p in sys.path if p]
        allowed = sorted(set(sys.stdlib_module_names) | {"numpy", "__future__"}) if numpy_only else None
        inputs = dict(extra_inputs or {})
        for index, call in enumerate(calls):
            for j, (_kind, value) in enumerate(call.arguments):
                inputs[f"{index}_{j}"] = np.asarray(value)
        np.savez(workdir / "inputs.npz", **inputs)
        spec = {"path": path, "allowed": allowed, "denied": list(FORBIDDEN_IN_SANDBOX), "events": list(BLOCKED_EVENTS),
                "preamble": preamble, "cells": cells, "overrides": overrides,
                "calls": [(call.function, [kind for kind, _ in call.arguments]) for call in calls]}
        (workdir / "job.json").write_text(json.dumps(spec))
        environment = {"PATH": "/usr/bin:/bin", "HOME": job, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_HOME": job}
        try:
            subprocess.run([sys.executable, "-I", "-S", "-c", SANDBOX, job], cwd=job, env=environment, timeout=timeout,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True, check=False)
        except subprocess.TimeoutExpired:
            message = f"stopped after {timeout:.0f} s"
            return Outcome([None] * len(calls), [message] * len(calls), [message])
        try:
            errors = json.loads((workdir / "errors.json").read_text())
            with np.load(workdir / "outputs.npz", allow_pickle=False) as saved:
                stored = {key: np.array(saved[key]) for key in saved.files}
        except (OSError, ValueError) as error:
            message = f"the answers stopped their interpreter ({type(error).__name__})"
            return Outcome([None] * len(calls), [message] * len(calls), [message])
    cell_errors = [str(e) for e in errors.get("cells", [])] if isinstance(errors, dict) else []
    results = [stored.get(f"r{index}") for index in range(len(calls))]
    messages = [str(errors.get(str(index), "no result")) if results[index] is None else None for index in range(len(calls))]
    return Outcome(results, messages, cell_errors)


def _failure(what: str, wrong: int, total: int, kind: str, errors: list) -> list[str]:
    """A feedback line naming the kind of input (never the input), or nothing when every call was right."""
    if not wrong:
        return []
    raised = sorted({str(e).split(":")[0] for e in errors if e})
    suffix = f" (it raised {', '.join(raised)})" if raised else ""
    return [f"{what}: wrong on {wrong} of {total} {kind}{suffix}"]


def _shape_and_values(outcome: Outcome, expected: list, atol: float, exact: bool = False) -> tuple[int, int]:
    """(calls whose shape is wrong, calls whose values are wrong) of `outcome` against `expected` arrays."""
    import numpy as np

    bad_shape = bad_values = 0
    for got, want in zip(outcome.results, expected, strict=True):
        want = np.asarray(want)
        if got is None or got.shape != want.shape:
            bad_shape += 1
            bad_values += 1
        elif not np.issubdtype(got.dtype, np.number) and got.dtype != bool:
            bad_values += 1
        elif exact and not np.array_equal(got, want):
            bad_values += 1
        elif not exact and not np.allclose(got.astype(np.float64), want, atol=atol, rtol=0):
            bad_values += 1
    return bad_shape, bad_values


def _array_verdicts(points: dict[str, float], function: str, outcome: Outcome, expected: list, atol: float,
                    kind: str) -> dict[str, Verdict]:
    """The two verdicts of a function returning arrays: `test_<function>_shape` and `test_<function>_values`."""
    bad_shape, bad_values = _shape_and_values(outcome, expected, atol=atol)
    return {f"test_{function}_{part}": Verdict(points[f"test_{function}_{part}"], _failure(
        f"{function} {what}", wrong, len(expected), kind, outcome.errors))
        for part, what, wrong in (("shape", "output shape", bad_shape), ("values", "values", bad_values))}


def _answer_cells(notebook, answer_ids: list[str]) -> dict[str, str]:
    """The source of each answer cell of a submitted notebook (the first cell with that grade_id)."""
    found: dict[str, str] = {}
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id in answer_ids and grade_id not in found:
            found[grade_id] = cell.source
    return found


def _rng():
    """A generator seeded now, from the operating system: inputs nobody could have seen before grading."""
    import secrets

    import numpy as np

    return np.random.default_rng(secrets.randbits(64))


def _cells(answers: dict[str, str], ids: list[str]) -> list[str]:
    """The student's cells `ids`, in order (missing ones left out)."""
    return [answers[grade_id] for grade_id in ids if grade_id in answers]


# --- A1: dilated convolutions (NumPy only) ----------------------------------------------------------------------

A1_ANSWERS = ["effective_kernel_size", "dilated_conv2d", "receptive_field", "influence_mask"]
COURSE_SPAN = "def effective_kernel_size(kernel_size, dilation):\n    return dilation * (kernel_size - 1) + 1\n"


def gradient_mask(dilations, kernel_size: int = 3):
    """Reference: pixels with a non-zero gradient of the single output of a stack of all-ones convolutions."""
    import keras
    import tensorflow as tf

    size = 1 + sum(d * (kernel_size - 1) for d in dilations)
    model = keras.Sequential([keras.Input((size, size, 1))] + [
        keras.layers.Conv2D(1, kernel_size, dilation_rate=d, use_bias=False, kernel_initializer="ones")
        for d in dilations])
    image = tf.ones((1, size, size, 1))
    with tf.GradientTape() as tape:
        tape.watch(image)
        output = tf.reduce_sum(model(image))
    return tape.gradient(output, image).numpy()[0, :, :, 0] > 0


def keras_dilated_conv(image, kernel, dilation):
    """Reference: Keras' own dilated convolution on a batch of one single-channel image."""
    import keras

    x, w = image[None, :, :, None].astype("float32"), kernel[:, :, None, None].astype("float32")
    return keras.ops.convert_to_numpy(keras.ops.conv(x, w, padding="valid", dilation_rate=dilation))[0, :, :, 0]


def check_a1(answers: dict[str, str], points: dict[str, float]) -> dict[str, Verdict]:
    """A1's test cells, from the answer cells' sources; each part runs in a NumPy-only sandbox."""

    from pspnet_lib import layers

    rng, verdicts = _rng(), {}
    pairs = [(int(rng.integers(1, 12)), int(rng.integers(1, 17))) for _ in range(100)]
    out = run_sandboxed(_cells(answers, A1_ANSWERS[:1]), [Call("effective_kernel_size", [("int", k), ("int", d)])
                                                           for k, d in pairs])
    wrong = sum(got is None or got.shape != () or not got == layers.effective_kernel_size(k, d)
                for got, (k, d) in zip(out.results, pairs, strict=True))
    verdicts["test_effective_kernel_size"] = Verdict(points["test_effective_kernel_size"], _failure(
        "effective_kernel_size", wrong, len(pairs), "random (kernel_size, dilation) pairs", out.errors))

    cases = []
    for _ in range(15):
        k, d = int(rng.choice([1, 2, 3, 5])), int(rng.integers(1, 5))
        height, width = int(rng.integers(k * d + 1, 40)) | 1, int(rng.integers(k * d + 1, 40)) | 1
        cases.append((rng.normal(size=(height, width)), rng.normal(size=(k, k)), d))
    out = run_sandboxed(_cells(answers, A1_ANSWERS[:2]), [Call("dilated_conv2d", [("array", i), ("array", w), ("int", d)])
                                                           for i, w, d in cases], overrides=COURSE_SPAN)
    verdicts |= _array_verdicts(points, "dilated_conv2d", out, [keras_dilated_conv(*case) for case in cases], 1e-4,
                                "random odd-size images (kernels 1-5 wide, dilation 1-4)")

    stacks = []
    for _ in range(40):
        specs = []
        for _ in range(int(rng.integers(1, 7))):
            k = int(rng.choice([1, 3, 5]))
            specs.append((k, 2, 1) if rng.random() < 0.4 else (k, 1, int(rng.integers(1, 4))))
        stacks.append(specs)
    out = run_sandboxed(_cells(answers, A1_ANSWERS[:3]), [Call("receptive_field", [("int_rows", s)]) for s in stacks],
                        overrides=COURSE_SPAN)
    wrong = sum(got is None or got.shape != () or not got == layers.receptive_field(*zip(*specs, strict=False))
                for got, specs in zip(out.results, stacks, strict=True))
    verdicts["test_receptive_field"] = Verdict(points["test_receptive_field"], _failure(
        "receptive_field", wrong, len(stacks), "random stacks of 1-6 strided or dilated layers", out.errors))

    dilations = [(2, 2, 2), (1, 2, 5)] + [tuple(int(d) for d in rng.integers(1, 5, size=int(rng.integers(1, 5))))
                                          for _ in range(6)]
    out = run_sandboxed(_cells(answers, A1_ANSWERS), [Call("influence_mask", [("ints", d)]) for d in dilations],
                        overrides=COURSE_SPAN)
    expected = [gradient_mask(d) for d in dilations]
    failures = [f"influence_mask must return a boolean array, got {got.dtype}" for got in out.results[:1]
                if got is not None and got.dtype != bool]
    _, wrong = _shape_and_values(out, expected, atol=0, exact=True)
    failures += _failure("influence_mask", wrong, len(dilations), "stacks of 3x3 dilated convolutions (the two "
                         "of the question, and random ones of 1-4 layers)", out.errors)
    verdicts["test_influence_mask"] = Verdict(points["test_influence_mask"], failures)
    return verdicts


# --- A2: pyramid pooling (Parts 1-2 NumPy only; Part 3 may call keras.ops.image.resize) ---------------------

A2_ANSWERS = ["adaptive_bin_edges", "adaptive_avg_pool", "pyramid_pooling"]
COURSE_EDGES = ("import numpy as np\n\ndef adaptive_bin_edges(length, bins):\n"
                "    return [((i * length) // bins, -((-(i + 1) * length) // bins)) for i in range(bins)]\n")
COURSE_POOL = COURSE_EDGES + (
    "\ndef adaptive_avg_pool(features, bins):\n"
    "    features = np.asarray(features)\n"
    "    pooled = np.empty((features.shape[0], bins, bins, features.shape[3]), dtype=np.float32)\n"
    "    for i, (top, bottom) in enumerate(adaptive_bin_edges(features.shape[1], bins)):\n"
    "        for j, (left, right) in enumerate(adaptive_bin_edges(features.shape[2], bins)):\n"
    "            pooled[:, i, j] = features[:, top:bottom, left:right].mean(axis=(1, 2))\n"
    "    return pooled\n")
# The branch transforms a pyramid_pooling answer receives: the library PPM's 1x1 conv + BatchNorm + ReLU, in NumPy.
TRANSFORMS = ("import numpy as np\n\ndef branch_transforms(stacked):\n"
              "    return [lambda x, p=p: np.maximum(np.asarray(x, np.float32) @ p[:-2] * p[-2] + p[-1], 0) for p in stacked]\n")


def check_a2(answers: dict[str, str], points: dict[str, float]) -> dict[str, Verdict]:
    """A2's test cells: Parts 1-2 in a NumPy-only sandbox, Part 3 in one that offers Keras but not the library."""
    import keras
    import numpy as np

    from pspnet_lib import layers

    rng, verdicts = _rng(), {}
    pairs = [(int(rng.integers(1, 200)), int(rng.integers(1, 12))) for _ in range(200)]
    out = run_sandboxed(_cells(answers, A2_ANSWERS[:1]), [Call("adaptive_bin_edges", [("int", n), ("int", b)])
                                                           for n, b in pairs])
    expected = [np.array([(int(a), int(b)) for a, b in layers.adaptive_bin_edges(n, bins)]) for n, bins in pairs]
    _, wrong = _shape_and_values(out, expected, atol=0, exact=True)
    verdicts["test_adaptive_bin_edges"] = Verdict(points["test_adaptive_bin_edges"], _failure(
        "adaptive_bin_edges", wrong, len(pairs), "random (length, bins) pairs", out.errors))

    cases = []
    for _ in range(10):
        height, width = int(rng.integers(1, 40)) | 1, int(rng.integers(1, 40)) | 1
        features = rng.normal(size=(2, height, width, 3)).astype("float32")
        cases += [(features, bins) for bins in (1, 2, 3, 6)]
    out = run_sandboxed(_cells(answers, A2_ANSWERS[:2]), [Call("adaptive_avg_pool", [("array", f), ("int", b)])
                                                           for f, b in cases], overrides=COURSE_EDGES)
    expected = [keras.ops.convert_to_numpy(layers.adaptive_pool_2d(keras.ops.convert_to_tensor(f), b, "avg"))
                for f, b in cases]
    verdicts |= _array_verdicts(points, "adaptive_avg_pool", out, expected, 1e-5,
                                "random odd-size feature maps (bins 1, 2, 3, 6)")

    calls, expected = [], []
    for bins in [(1, 2, 3, 6), (1, 3), (2, 4, 8), (6,)]:
        height, width = int(rng.integers(3, 30)) | 1, int(rng.integers(3, 30)) | 1
        features = rng.normal(size=(2, height, width, 8)).astype("float32")
        ppm = layers.PyramidPoolingModule(bins=bins)
        ppm.build((None, height, width, 8))
        stacked = []
        for conv, norm in zip(ppm.branch_convs, ppm.branch_norms, strict=True):
            filters = conv.get_weights()[0].shape[-1]
            gamma, beta = rng.uniform(0.5, 1.5, filters), rng.normal(size=filters)
            mean, variance = rng.normal(size=filters), rng.uniform(0.5, 2.0, filters)
            norm.set_weights([gamma, beta, mean, variance])
            scale = gamma / np.sqrt(variance + norm.epsilon)
            stacked.append(np.vstack([conv.get_weights()[0][0, 0], scale, beta - mean * scale]).astype(np.float32))
        expected.append(keras.ops.convert_to_numpy(ppm(features, training=False)))
        calls.append(Call("pyramid_pooling", [("array", features), ("ints", bins), ("transforms", np.stack(stacked))]))
    out = run_sandboxed(_cells(answers, A2_ANSWERS), calls, preamble="import numpy as np\nimport keras",
                        overrides=COURSE_POOL + TRANSFORMS, numpy_only=False)
    verdicts |= _array_verdicts(points, "pyramid_pooling", out, expected, 1e-4,
                                "random odd-size feature maps (bin sets (1, 2, 3, 6), (1, 3), (2, 4, 8), (6,))")
    return verdicts


# --- A3: train a PSPNet ------------------------------------------------------------------------------------------

A3_ANSWERS = ["predict_ids", "mean_iou"]
NUM_CLASSES, IGNORE_LABEL, BATCH_SIZE = 19, 255, 8
CONSTANTS = (f"import numpy as np\nBATCH_SIZE = {BATCH_SIZE}\n\nclass data:\n"
             f"    NUM_CLASSES = {NUM_CLASSES}\n    IGNORE_LABEL = {IGNORE_LABEL}\n")
# predict_ids runs on a plain Keras model with a main and an auxiliary output (and on one without), whose weights
# the grader drew now: the sandbox offers Keras but not the course library.
PROBE = (CONSTANTS + "import keras\n\ndef probe_model(aux):\n"
         "    inputs = keras.Input((None, None, 3))\n"
         f"    main = keras.layers.Conv2D({NUM_CLASSES}, 3, padding='same')(inputs)\n"
         f"    return keras.Model(inputs, [main, keras.layers.Conv2D({NUM_CLASSES}, 1)(inputs)] if aux else main)\n\n"
         "PROBES = {}\nwith np.load('inputs.npz') as given:\n"
         "    for aux in (True, False):\n"
         "        PROBES[aux] = probe_model(aux)\n"
         "        PROBES[aux].set_weights([given[f'probe{int(aux)}_{i}'] for i in range(len(PROBES[aux].weights))])\n"
         "PROBE_AUX, PROBE_PLAIN = PROBES[True], PROBES[False]\n")


def graded_sizes() -> tuple[int, int]:
    """(image size, validation images) of A3 and A4, as their setup cells choose them (fast mode or not)."""
    from pspnet_lib import config

    return (64, 8) if config.fast_mode() else (128, 100)


def _split(root, size: int, limit: int):
    """(images, labels) of the first `limit` validation pairs under `root`, read by this process."""
    import numpy as np

    from pspnet_lib import data

    batches = list(data.make_dataset(root, "val", image_size=size, batch_size=BATCH_SIZE, augment=False,
                                     shuffle=False, limit=limit).as_numpy_iterator())
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def _miou(labels, ids, num_classes: int = NUM_CLASSES) -> float:
    """The course's mIoU."""
    from pspnet_lib import metrics

    return metrics.mean_iou(metrics.confusion_matrix(labels, ids, num_classes))


def beats_constant(labels, ids, accuracy_too: bool = True) -> str:
    """Why `ids` do not beat the best constant prediction (mIoU, and pixel accuracy); empty when they do."""
    import numpy as np

    from pspnet_lib import metrics

    confusion = metrics.confusion_matrix(labels, ids)
    constant = max(_miou(labels, np.full_like(labels, c)) for c in range(NUM_CLASSES))
    majority = confusion.sum(axis=1).max() / confusion.sum()
    miou, accuracy = metrics.mean_iou(confusion), metrics.pixel_accuracy(confusion)
    if miou > constant and (accuracy > majority or not accuracy_too):
        return ""
    return f"no better than a constant prediction (mIoU {miou:.3f}, best constant {constant:.3f}; pixel accuracy " \
           f"{accuracy:.3f}, majority class {majority:.3f})"


def far_below_constant(labels, ids, share: float = 0.9) -> bool:
    """True when `ids` get fewer than `share` of the pixels a constant majority-class prediction gets right."""
    from pspnet_lib import metrics

    confusion = metrics.confusion_matrix(labels, ids)
    return metrics.pixel_accuracy(confusion) < share * confusion.sum(axis=1).max() / confusion.sum()


def hidden_scenes(size: int, limit: int):
    """Fresh synthetic scenes drawn now, with a seed nobody saw: (images, labels)."""
    import secrets
    import tempfile

    from pspnet_lib import data

    with tempfile.TemporaryDirectory(prefix="pspnet-hidden-") as root:
        data.write_synthetic_dataset(root, num_train=1, num_val=limit, seed=secrets.randbelow(2**31))
        return _split(root, size, limit)


def scored_split(size: int, limit: int):
    """The validation images and labels A3 and A4 are scored on (the synthetic city, seed 0)."""
    from pspnet_lib import data

    return _split(data.ensure_synthetic_dataset(seed=0, num_train=200, num_val=50), size, limit)


def predict_main(model, images):
    """Main logits of `model` for `images`, in batches (the course's inference code)."""
    import numpy as np

    from pspnet_lib import inference

    return np.concatenate([inference.main_output(model, images[i: i + BATCH_SIZE])
                           for i in range(0, len(images), BATCH_SIZE)])


def load_saved(path: Path, key: str):
    """One plain array of an .npz the notebook wrote, read without pickles; None when it is not there."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as saved:
            return np.array(saved[key])
    except (OSError, KeyError, ValueError, EOFError):
        return None


def agreement(logits, saved) -> float:
    """Share of pixels whose saved class is within 1e-3 of the best logit (another device may break ties otherwise)."""
    import numpy as np

    if saved is None or saved.shape != logits.shape[:3] or not np.issubdtype(saved.dtype, np.integer) \
            or saved.min() < 0 or saved.max() >= logits.shape[-1]:
        return 0.0
    chosen = np.take_along_axis(logits, saved[..., None].astype(np.int64), -1)[..., 0]
    return float(np.mean(chosen >= logits.max(-1) - 1e-3))


def check_a3(answers: dict[str, str], points: dict[str, float], folder: Path) -> dict[str, Verdict]:
    """A3: Parts 1-2 from the answer cells in sandboxes; Part 3 from the weights and files the notebook saved."""
    import keras
    import numpy as np

    rng, verdicts = _rng(), {}
    namespace: dict = {}
    exec(PROBE.split("PROBES = {}")[0], namespace)  # the probe architecture only (trusted code, no student's)
    probes, extra = {}, {}
    for aux in (True, False):
        keras.utils.set_random_seed(int(rng.integers(2**31)))
        probes[aux] = namespace["probe_model"](aux)
        extra |= {f"probe{int(aux)}_{i}": w for i, w in enumerate(probes[aux].get_weights())}
    calls, expected = [], []
    for aux in (True, False, True, False):
        images = rng.random((BATCH_SIZE + 3, int(rng.integers(9, 40)) | 1, int(rng.integers(9, 40)) | 1, 3)).astype("float32")
        outputs = probes[aux](images, training=False)
        expected.append(keras.ops.convert_to_numpy(outputs[0] if aux else outputs))
        calls.append(Call("predict_ids", [("name", "PROBE_AUX" if aux else "PROBE_PLAIN"), ("array", images)]))
    out = run_sandboxed(_cells(answers, A3_ANSWERS[:1]), calls, preamble=PROBE, numpy_only=False, extra_inputs=extra)
    wrong = sum(got is None or got.dtype != np.uint8 or agreement(logits, got) < 1.0 - 1e-9
                for got, logits in zip(out.results, expected, strict=True))
    verdicts["test_predict_ids"] = Verdict(points["test_predict_ids"], _failure(
        "predict_ids (uint8 ids of the main output's most likely class)", wrong, len(calls),
        "random image batches on models with and without an auxiliary output", out.errors))

    perfect, cases = [], []
    for _ in range(3):
        perfect.append(rng.integers(0, NUM_CLASSES, size=(2, 16, 16)))
    for _ in range(30):
        num_classes = int(rng.choice([2, 5, NUM_CLASSES]))
        present = rng.choice(num_classes, size=int(rng.integers(2, num_classes + 1)), replace=False)
        labels = rng.choice(present, size=(2, 24, 20)).astype(np.uint8)
        labels[rng.random(labels.shape) < 0.15] = IGNORE_LABEL
        guesses = np.append(present, rng.integers(0, num_classes))
        predictions = np.where(rng.random(labels.shape) < 0.5, labels, rng.choice(guesses, labels.shape)).astype(np.uint8)
        cases.append((labels, predictions, num_classes))
    calls = [Call("mean_iou", [("array", labels), ("array", labels)]) for labels in perfect]
    calls += [Call("mean_iou", [("array", y), ("array", p)] + ([("int", n)] if n != NUM_CLASSES else []))
              for y, p, n in cases]
    out = run_sandboxed(_cells(answers, A3_ANSWERS), calls, preamble=CONSTANTS)

    def off(got, want):
        return got is None or got.shape != () or not abs(float(got) - want) < 1e-9

    wrong = sum(off(got, 1.0) for got in out.results[:3])
    verdicts["test_mean_iou_perfect"] = Verdict(points["test_mean_iou_perfect"], _failure(
        "mean_iou of a perfect prediction", wrong, 3, "random label maps", out.errors[:3]))
    wrong = sum(off(got, _miou(y, p, n)) for got, (y, p, n) in zip(out.results[3:], cases, strict=True))
    verdicts["test_mean_iou_values"] = Verdict(points["test_mean_iou_values"], _failure(
        "mean_iou", wrong, len(cases), "random label maps with ignored pixels and absent classes (2, 5 or 19 "
        "classes)", out.errors[3:]))
    verdicts |= check_trained_a3(points, folder)
    return verdicts


def load_course_model(weights: Path, **kwargs):
    """The course's PSPNet built with `kwargs`, holding the saved `weights`; (model, problem)."""
    from pspnet_lib import models

    model = models.build_pspnet(NUM_CLASSES, **kwargs)
    if not Path(weights).is_file():
        return None, f"{Path(weights).name} was not saved"
    try:
        model.load_weights(weights)
    except Exception as error:  # noqa: BLE001 (any failure to load means the weights are not this network's)
        return None, f"{Path(weights).name} does not hold this network's weights ({type(error).__name__})"
    return model, ""


A3_MODEL, A3_PREDICTIONS, A3_REPORT = "a3_model.weights.h5", "a3_predictions.npz", "a3_report.npz"
A3_PART3 = ["test_saved_predictions", "test_reported_miou", "test_model_learned", "test_fresh_images"]


def check_trained_a3(points: dict[str, float], folder: Path) -> dict[str, Verdict]:
    """A3 Part 3 from what the notebook saved: its weights in the course's network, re-predicted and re-scored here."""
    size, limit = graded_sizes()
    model, problem = load_course_model(folder / A3_MODEL, backbone="small")
    if model is None:
        return {test: Verdict(points[test], [f"the trained model: {problem}"]) for test in A3_PART3}
    hidden_images, hidden_labels = hidden_scenes(size, limit)
    untrained = beats_constant(hidden_labels, predict_main(model, hidden_images).argmax(-1))
    gate = [f"the saved model on fresh scenes drawn at grading time: {untrained} (was it trained?)"] if untrained else []
    images, labels = scored_split(size, limit)
    logits = predict_main(model, images)
    rescored = _miou(labels, logits.argmax(-1))
    saved = load_saved(folder / A3_PREDICTIONS, "predictions")
    share = agreement(logits, saved)
    reported = load_saved(folder / A3_REPORT, "reported_miou")
    reported_ok = reported is not None and reported.shape == () and abs(float(reported) - rescored) < 0.005
    learned = beats_constant(labels, logits.argmax(-1))
    return {
        "test_saved_predictions": Verdict(points["test_saved_predictions"], gate + (
            [] if share >= 0.995 else [f"saved predictions: {share:.1%} of the validation pixels are what the "
                                       "saved model predicts (99.5 % needed)"])),
        "test_reported_miou": Verdict(points["test_reported_miou"], gate + (
            [] if reported_ok else ["reported_miou is not the mIoU of the saved model's validation predictions "
                                    "(within 0.005)"])),
        "test_model_learned": Verdict(points["test_model_learned"], gate + (
            [f"validation images: {learned}"] if learned else [])),
        "test_fresh_images": Verdict(points["test_fresh_images"], gate),
    }


# --- A4: ablation ------------------------------------------------------------------------------------------------

A4_DESIGN, A4_RESULTS, A4_PREDICTIONS = "a4_design.npz", "a4_results.npz", "a4_predictions.npz"
A4_NOT_FACTORS = {"bins", "backbone", "num_classes", "name", "weights", "input_shape"}
MEANINGFUL_CHANGE = 0.2  # a numeric factor must change by at least this share of its larger setting


def a4_weights_file(arm: str, seed: int) -> str:
    """Where A4's notebook saves the model `train_variant` trained for one arm and seed."""
    return f"a4_{arm}_seed{seed}.weights.h5"


def network_signature(kwargs: dict) -> str:
    """What the built network is, names left out: each layer's class and configuration, and its weight shapes."""
    from pspnet_lib import models

    model = models.build_pspnet(NUM_CLASSES, **kwargs)

    def unnamed(config):
        if isinstance(config, dict):
            return {key: unnamed(value) for key, value in config.items() if key != "name"}
        return [unnamed(value) for value in config] if isinstance(config, list | tuple) else config

    seen = [(type(layer).__name__, unnamed(layer.get_config()), [tuple(w.shape) for w in layer.weights])
            for layer in model._flatten_layers(include_self=False)]
    return json.dumps([seen, model.count_params()], sort_keys=True, default=str)


def design_problems(design) -> list[str]:
    """Why an ABLATION (as plain JSON data) is not a one-factor ablation worth running; empty when it is."""
    import inspect

    from pspnet_lib import models

    keys = {"question", "factor", "prediction", "seeds", "baseline", "variant"}
    if not isinstance(design, dict) or not keys <= set(design):
        return ["ABLATION must be a dict with the keys " + ", ".join(sorted(keys))]
    arguments = set(inspect.signature(models.build_pspnet).parameters)
    baseline, variant, factor = design["baseline"], design["variant"], design["factor"]
    if not isinstance(baseline, dict) or not isinstance(variant, dict) or not isinstance(factor, str):
        return ["baseline and variant must be dicts of build_pspnet arguments, factor one argument's name"]
    if factor not in arguments or factor in A4_NOT_FACTORS:
        return [f"{factor!r} is not a factor you may ablate (an argument of build_pspnet other than "
                f"{sorted(A4_NOT_FACTORS)})"]
    if not set(baseline) | set(variant) <= arguments:
        return ["baseline or variant holds an unknown argument of build_pspnet"]
    changed = {key for key in set(baseline) | set(variant) if baseline.get(key, "<default>") != variant.get(key, "<default>")}
    problems = [] if changed == {factor} else [
        f"baseline and variant must differ exactly in {factor!r}; they differ in {sorted(changed)}"]
    if not baseline.get("backbone") == variant.get("backbone") == "small":
        problems.append("keep backbone='small' in both arms")
    seeds = design["seeds"]
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or len(set(seeds)) < 2:
        problems.append("train each arm with at least two different integer seeds")
    if not isinstance(design["prediction"], str) or len(design["prediction"].split()) < 8:
        problems.append("write your prediction (a sentence or more)")
    return problems + null_ablation(design)


def null_ablation(design: dict) -> list[str]:
    """Why the two arms measure nothing (the same network, or settings too close to differ); empty otherwise."""
    import inspect
    import numbers

    from pspnet_lib import models

    factor = design["factor"]
    parameter = inspect.signature(models.build_pspnet).parameters.get(factor)
    default = parameter.default if parameter is not None else None
    low, high = design["baseline"].get(factor, default), design["variant"].get(factor, default)
    if isinstance(low, numbers.Real) and isinstance(high, numbers.Real) and not isinstance(low, bool) \
            and abs(low - high) < MEANINGFUL_CHANGE * max(abs(low), abs(high)):
        return [f"the two settings of {factor!r} differ by less than {MEANINGFUL_CHANGE:.0%}: that measures noise"]
    try:
        same = network_signature(design["baseline"]) == network_signature(design["variant"])
    except Exception as error:  # noqa: BLE001 (a design that does not build is a design problem)
        return [f"an arm does not build ({type(error).__name__}: {str(error)[:120]})"]
    return ["baseline and variant build the same network"] if same else []


def check_a4(points: dict[str, float], folder: Path) -> dict[str, Verdict]:
    """A4 from what the notebook saved: its design as JSON, each arm's weights, predictions and reported mIoUs."""

    text = load_saved(folder / A4_DESIGN, "design")
    try:
        design = json.loads(str(text)) if text is not None and text.shape == () else None
    except ValueError:
        design = None
    problems = design_problems(design) if design is not None else [
        f"{A4_DESIGN} was not written: ABLATION must be plain data (dicts, lists, strings, numbers)"]
    verdicts = {"test_ablation_design": Verdict(points["test_ablation_design"], problems)}
    # The results count when both arms are networks that differ (even if the design loses points for other reasons).
    runnable = design is not None and not [p for p in problems if p.startswith(("ABLATION must", "baseline and variant must be dicts", "train each arm"))]
    null = null_ablation(design) if runnable else ["the design cannot be run as an ablation"]
    verdicts["test_ablation_results"] = Verdict(points["test_ablation_results"], [
        f"no ablation to score: {null[0]}"] if null else results_problems(design, folder))
    return verdicts


def results_problems(design: dict, folder: Path) -> list[str]:
    """Why the saved A4 runs are not trained models whose predictions and mIoUs the notebook reported."""
    size, limit = graded_sizes()
    text = load_saved(folder / A4_RESULTS, "results")
    try:
        results = json.loads(str(text)) if text is not None else None
    except ValueError:
        results = None
    if not isinstance(results, dict):
        return [f"{A4_RESULTS} was not written: `results` must map 'baseline' and 'variant' to one mIoU per seed"]
    images, labels = scored_split(size, limit)
    hidden_images, hidden_labels = hidden_scenes(size, limit)
    problems, weights, learned = [], {}, {}
    for arm in ("baseline", "variant"):
        reported = results.get(arm)
        if not isinstance(reported, list) or len(reported) != len(design["seeds"]):
            problems.append(f"{arm}: report one mIoU per seed")
            continue
        for seed, value in zip(design["seeds"], reported, strict=True):
            key = f"{arm}_seed{seed}"
            model, problem = load_course_model(folder / a4_weights_file(arm, seed), **design[arm])
            if model is None:
                problems.append(f"{key}: {problem}")
                continue
            weights[arm, seed] = model.get_weights()
            hidden_ids = predict_main(model, hidden_images).argmax(-1)
            if far_below_constant(hidden_labels, hidden_ids):
                problems.append(f"{key}: on fresh scenes drawn at grading time the model is far below a constant "
                                "prediction, as an untrained network is")
            learned.setdefault(arm, []).append(beats_constant(hidden_labels, hidden_ids, accuracy_too=False))
            logits = predict_main(model, images)
            saved = load_saved(folder / A4_PREDICTIONS, key)
            if agreement(logits, saved) < 0.995:
                problems.append(f"{key}: the saved predictions are not what the saved model predicts")
            elif not isinstance(value, int | float) or abs(value - _miou(labels, saved)) > 1e-6:
                problems.append(f"{key}: the reported mIoU is not the mIoU of the saved predictions")
    # A short training run may collapse to the majority class for one seed; an arm none of whose runs beats a
    # constant prediction learned nothing.
    problems += [f"{arm}: no run beats a constant prediction on fresh scenes drawn at grading time ({runs[0]})"
                 for arm, runs in learned.items() if all(runs)]
    import numpy as np

    for seed in design["seeds"]:
        pair = weights.get(("baseline", seed)), weights.get(("variant", seed))
        if None not in pair and len(pair[0]) == len(pair[1]) and all(
                a.shape == b.shape and np.array_equal(a, b) for a, b in zip(*pair, strict=True)):
            problems.append(f"seed {seed}: baseline and variant hold the same weights (one model, not two runs)")
    return problems


# --- From a submission to the gradebook ---------------------------------------------------------------------------

def source_notebook(course_dir: Path, assignment: str):
    """The instructor's notebook of `assignment`."""
    import nbformat

    return nbformat.read(course_dir / "source" / assignment / f"{assignment}.ipynb", as_version=4)


def test_points(source) -> dict[str, float]:
    """Points of each autograded test cell of a source notebook."""
    return {cell.metadata.nbgrader["grade_id"]: float(cell.metadata.nbgrader["points"]) for cell in source.cells
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade")}


def check_submission(assignment: str, submitted, points: dict[str, float], folder: Path) -> dict[str, Verdict]:
    """Every test cell's verdict for one submission: `submitted` is its notebook, `folder` where its re-run wrote."""
    if assignment.startswith("a1_"):
        return check_a1(_answer_cells(submitted, A1_ANSWERS), points)
    if assignment.startswith("a2_"):
        return check_a2(_answer_cells(submitted, A2_ANSWERS), points)
    if assignment.startswith("a3_"):
        return check_a3(_answer_cells(submitted, A3_ANSWERS), points, folder)
    if assignment.startswith("a4_"):
        return check_a4(points, folder)
    raise ValueError(f"no trusted checks for assignment {assignment!r}")


def feedback_text(verdict: Verdict) -> str:
    """What the student reads under a test cell: the points and each failed check."""
    lines = [f"Graded by the course's checker in its own process: {verdict.points:g} / {verdict.max_points:g} points."]
    return "\n".join(lines + [f"- {failure}" for failure in verdict.failures]) + "\n"


def record(course_dir: Path, assignment: str, student: str, verdicts: dict[str, Verdict]) -> None:
    """Write the verdicts into the gradebook (with the late penalty of the new score) and the graded notebook."""
    import nbformat
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        for grade_id, verdict in verdicts.items():
            gradebook.find_grade(grade_id, assignment, assignment, student).auto_score = verdict.points
        gradebook.db.commit()
        submission = gradebook.find_submission(assignment, student)
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        late = submission.total_seconds_late
        notebook.late_submission_penalty = late_penalty(notebook.score, late) if late > 0 else None
        gradebook.db.commit()
    path = course_dir / "autograded" / student / assignment / f"{assignment}.ipynb"
    graded = nbformat.read(path, as_version=4)
    for cell in graded.cells:
        verdict = verdicts.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
        if verdict is not None and cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=feedback_text(verdict))]
    mode = path.stat().st_mode  # nbgrader leaves graded notebooks read-only (444)
    path.chmod(mode | 0o200)
    nbformat.write(graded, path)
    path.chmod(mode)


def record_unusable(course_dir: Path, assignment: str, student: str, reason: str) -> Path:
    """Score 0 for a submission that cannot be graded (`reason`: which file, and why), and its feedback page.

    Nothing of it runs: every graded cell gets 0 points in the gradebook, so the grades CSV lists the student with
    0, and feedback/<student>/<assignment>/<assignment>.html tells the student why. Returns that page.
    """
    from html import escape

    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        gradebook.update_or_create_student(student)
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            with warnings.catch_warnings():  # nbgrader's own autoflush notices while it mirrors the assignment
                warnings.simplefilter("ignore", SAWarning)
                submission = gradebook.add_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0.0
        gradebook.db.commit()
    page = course_dir / "feedback" / student / assignment / f"{assignment}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{escape(assignment)}: not graded</title></head>\n"
        f"<body><h1>{escape(assignment)}</h1>\n<p>Your submission could not be graded, so it scores 0 points: "
        f"{escape(reason)}.</p>\n<p>Submit the notebook of this assignment, saved from Jupyter (File, Save), "
        "and ask your instructor to grade it again.</p></body></html>\n"
    )
    return page


def late_penalty(score: float, seconds_late: float, percent_per_day: float = PERCENT_PER_DAY) -> float:
    """`percent_per_day` of the score per started day late, never more than the score."""
    return min(score, score * percent_per_day / 100 * math.ceil(seconds_late / 86400))


def check_and_record(course_dir: Path, assignment: str, student: str) -> dict[str, Verdict]:
    """Check one autograded submission and write its scores; the one entry point `course.py grade` calls."""
    import nbformat

    submitted = nbformat.read(course_dir / "submitted" / student / assignment / f"{assignment}.ipynb", as_version=4)
    points = test_points(source_notebook(course_dir, assignment))
    verdicts = check_submission(assignment, submitted, points, course_dir / "autograded" / student / assignment)
    record(course_dir, assignment, student, verdicts)
    return verdicts


try:  # nbgrader is there when the grader runs; the screen above works without it
    from nbgrader.plugins import LateSubmissionPlugin
    from nbgrader.preprocessors import NbGraderPreprocessor
    from traitlets import Float
except ImportError:  # pragma: no cover
    LateSubmissionPlugin = NbGraderPreprocessor = object
    Float = None


class ScreenAnswers(NbGraderPreprocessor):
    """nbgrader sanitising step: refuse student cells that could fool the tests (see `screen`)."""

    def preprocess(self, nb, resources):
        """Screen `nb` against the grader's cells of its source notebook, logging each refused cell."""
        import nbformat

        assignment = resources["nbgrader"]["assignment"]
        notebook_name = resources["nbgrader"]["notebook"]
        source = nbformat.read(COURSE_DIR / "source" / assignment / f"{notebook_name}.ipynb", as_version=4)
        for grade_id, problems in screen_notebook(nb, assignment, *grader_view(source)).items():
            self.log.warning("Refused cell %s of %s: %s", grade_id, assignment, "; ".join(problems))
        return nb, resources


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback step: drop hidden test regions from the test cells and cut their tracebacks to the final message."""

    def preprocess(self, nb, resources):
        """Clean every cell holding a hidden test region."""
        for cell in nb.cells:
            if cell.cell_type == "code" and HIDDEN_BEGIN in cell.source:
                cell.source = hidden_region_removed(cell.source)
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error":
                        output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return nb, resources


class PercentPerDayLate(LateSubmissionPlugin):
    """Late penalty: `percent_per_day` of the score per started day late, never more than the score."""

    if Float is not None:
        percent_per_day = Float(PERCENT_PER_DAY, help="percent of the score lost per started day late").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        """The points to subtract from `score`."""
        if total_seconds_late <= 0:
            return None
        return late_penalty(score, total_seconds_late, self.percent_per_day)


def launch_kernel(argv: list[str]) -> None:
    """`--memory-gb G <ipykernel arguments>`: an IPython kernel whose heap may not grow beyond G GiB."""
    import resource

    if argv[:1] == ["--memory-gb"]:
        limit = int(float(argv[1]) * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        argv = argv[2:]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=argv)


def main(argv: list[str]) -> int:
    """`check COURSE_DIR ASSIGNMENT STUDENT [SECONDS]` (the trusted checks, SECONDS per part's sandbox) or
    `--memory-gb G ...` (a kernel)."""
    if argv[:1] != ["check"]:
        launch_kernel(argv)
        return 0
    course_dir, assignment, student = Path(argv[1]), argv[2], argv[3]
    global WORKER_TIMEOUT
    WORKER_TIMEOUT = float(argv[4]) if len(argv) > 4 else WORKER_TIMEOUT
    verdicts = check_and_record(course_dir, assignment, student)
    earned = sum(verdict.points for verdict in verdicts.values())
    print(f"checked {assignment} of {student}: {earned:g} / {sum(v.max_points for v in verdicts.values()):g} "
          "autograded points", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
