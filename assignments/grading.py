"""The grader's side of the course, never given to students (the student kit leaves it out).

nbgrader loads this module through `nbgrader_config.py`:
- `ScreenAnswers` reads every cell a student could write (answer cells and any cell they added) with Python's
  `ast` before the notebook runs, in the grader's own process where student code cannot reach it. A cell that
  calls the course library's answer, a test cell's helper, rebinds a name the grader's cells defined, assigns
  to an attribute (monkeypatching `np.testing.assert_allclose`, ...), or reaches for `exec`, `setattr`,
  `sys`, `importlib`, ... is replaced by a cell that raises: its part scores zero, the rest is graded as usual.
- `PercentPerDayLate` is the late penalty.
- `python grading.py --memory-gb G -f CONNECTION_FILE` starts an IPython kernel under a memory limit.
"""

from __future__ import annotations

import ast
import math
import sys
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
                if isinstance(target, ast.Attribute) and _dotted(target)[0] != "self":
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
        percent_per_day = Float(10.0, help="percent of the score lost per started day late").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        """The points to subtract from `score`."""
        if total_seconds_late <= 0:
            return None
        days = math.ceil(total_seconds_late / 86400)
        return min(score, score * self.percent_per_day / 100 * days)


def launch_kernel(argv: list[str]) -> None:
    """`--memory-gb G <ipykernel arguments>`: an IPython kernel whose heap may not grow beyond G GiB."""
    import resource

    if argv[:1] == ["--memory-gb"]:
        limit = int(float(argv[1]) * 2**30)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        argv = argv[2:]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=argv)


if __name__ == "__main__":
    launch_kernel(sys.argv[1:])
