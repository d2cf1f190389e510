"""Release and grade the course's nbgrader assignments.

    python assignments/course.py release [NAME ...]   # source/<NAME>/ -> release/<NAME>/ (student versions)
    python assignments/course.py grade [NAME ...] [--student ID] [--timeout S] [--workers 2]
                                                   # submitted/*/<NAME>/ -> autograded/, feedback/, grades.csv
    python assignments/course.py collect NAME DOWNLOAD.zip   # an LMS download -> submitted/<student>/<NAME>/
    python assignments/course.py kit [--output DIR]    # what students get: notebooks, library, released assignments

Each step runs nbgrader's own command line (generate_assignment, autograde, generate_feedback, export) in the
course directory, whose `nbgrader_config.py` holds the course settings. Notebooks execute on a `python3` kernel
pinned to the Python running this script, with TensorFlow's log lines silenced.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

COURSE_DIR = Path(__file__).resolve().parent
GRADES_CSV = Path("grades.csv")  # beside feedback/, so sending feedback folders to students never sends the CSV
KERNEL_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
PROJECT_DIR = COURSE_DIR.parent
DEFAULT_KIT_DIR = PROJECT_DIR / "dist" / "student-kit"
# What students receive, relative to the project: never source/, the grader, gradebooks, submissions or feedback.
KIT_FILES = ("README.md", "LICENSE", "pyproject.toml", "Makefile", "environment.yml")
KIT_FOLDERS = ("pspnet_lib", "notebooks", "assignments/release")
KIT_README = COURSE_DIR / "kit_readme.md"  # becomes assignments/README.md in the kit (the students' instructions)
KIT_MARKER = ".pspnet-student-kit"  # written into a kit folder: only such a folder (or a new, empty one) is replaced
KIT_SKIPPED = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.npz", "*.pyc")


@dataclass(frozen=True)
class GradingRun:
    """What `grade` produced: the grades CSV and every student's feedback folder, plus assignments that failed."""

    grades_csv: Path
    feedback_dirs: list[Path]
    failed: list[str]


def assignment_names(course_dir: Path = COURSE_DIR) -> list[str]:
    """Names of the assignments authored in `course_dir/source/`, sorted."""
    source = course_dir / "source"
    if not source.is_dir():
        raise ValueError(f"{source} does not exist: expected one folder per assignment in source/")
    return sorted(path.name for path in source.iterdir() if path.is_dir() and any(path.glob("*.ipynb")))


def submitted_assignments(course_dir: Path = COURSE_DIR) -> list[str]:
    """Assignments that at least one student has submitted (submitted/<student>/<assignment>/), sorted."""
    submitted = course_dir / "submitted"
    folders = submitted.glob("*/*/") if submitted.is_dir() else []
    return sorted({folder.name for folder in folders if folder.is_dir() and not folder.name.startswith(".")})


def _kernel_spec(python: str, memory_gb: float = 0) -> dict:
    """A `python3` kernel spec running `python` (under `memory_gb` GiB of heap when > 0), with the course's environment."""
    launcher = ["-m", "ipykernel_launcher"] if memory_gb <= 0 else [str(COURSE_DIR / "grading.py"), "--memory-gb", str(memory_gb)]
    return {
        "argv": [python, *launcher, "-f", "{connection_file}"],
        "display_name": "Python 3 (pspnet-course)",
        "language": "python",
        "env": KERNEL_ENV,
    }


@contextmanager
def pinned_kernel_path(python: str = sys.executable, memory_gb: float = 0) -> Iterator[str]:
    """A temporary JUPYTER_PATH whose `python3` kernel is `python`, so no other `python3` kernel spec can win."""
    with tempfile.TemporaryDirectory(prefix="pspnet-kernels-") as jupyter_path:
        kernel_dir = Path(jupyter_path) / "kernels" / "python3"
        kernel_dir.mkdir(parents=True)
        (kernel_dir / "kernel.json").write_text(json.dumps(_kernel_spec(python, memory_gb), indent=1))
        yield jupyter_path


def nbgrader_environment(jupyter_path: str) -> dict[str, str]:
    """Environment for nbgrader: this Python's bin/ first on PATH (nbgrader calls alembic), the pinned kernels."""
    bin_dir = str(Path(sys.executable).parent)
    environment = {**os.environ, **KERNEL_ENV, "JUPYTER_PATH": jupyter_path}
    environment["PATH"] = os.pathsep.join([bin_dir, environment.get("PATH", "")])
    return environment


def run_nbgrader(course_dir: Path, arguments: Sequence[str], jupyter_path: str, timeout: float | None = None) -> bool:
    """Run `nbgrader <arguments>` in `course_dir`; True when it succeeded within `timeout` seconds (log to stderr)."""
    command = [sys.executable, "-m", "nbgrader", *arguments]
    print("$ nbgrader " + " ".join(arguments), flush=True)
    process = subprocess.Popen(command, cwd=course_dir, env=nbgrader_environment(jupyter_path), start_new_session=True)
    try:
        return process.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:  # the whole notebook ran too long: stop nbgrader and its kernel
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        print(f"stopped after {timeout:.0f} s: nbgrader {' '.join(arguments)}", file=sys.stderr, flush=True)
        return False


def _check_names(requested: Sequence[str], known: Sequence[str]) -> list[str]:
    """`requested` (or all of `known` when empty); ValueError naming any unknown assignment."""
    unknown = sorted(set(requested) - set(known))
    if unknown:
        raise ValueError(f"unknown assignment(s) {unknown}: expected names of folders in source/, i.e. {list(known)}")
    return list(requested) or list(known)


def release(course_dir: Path = COURSE_DIR, names: Sequence[str] = ()) -> list[Path]:
    """Generate the student version of each assignment into release/<name>/; return those folders."""
    selected = _check_names(names, assignment_names(course_dir))
    with pinned_kernel_path() as jupyter_path:
        for name in selected:
            if not run_nbgrader(course_dir, ["generate_assignment", name, "--force"], jupyter_path):
                raise RuntimeError(f"nbgrader generate_assignment {name} failed (see its log above)")
    return [course_dir / "release" / name for name in selected]


GRADED_DATA = "the synthetic city, seed 0, 200 train / 50 val pairs"  # what A3 and A4 are scored on (named in feedback)


@dataclass(frozen=True)
class GradingLimits:
    """Limits of one grading run: seconds per cell, seconds per notebook, GiB of memory per kernel, parallel kernels."""

    cell_timeout: int | None = None  # None: nbgrader_config.py's Execute.timeout
    notebook_timeout: float = 3600.0
    memory_gb: float = 6.0
    workers: int = 2


def submissions(course_dir: Path, names: Sequence[str] = (), students: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(assignment, student) of every submission in submitted/, optionally only `names` and `students`, sorted."""
    pairs = sorted(
        (folder.name, folder.parent.name) for folder in (course_dir / "submitted").glob("*/*/")
        if folder.is_dir() and not folder.name.startswith(".") and not folder.parent.name.startswith(".")
    )
    return [(name, student) for name, student in pairs
            if (not names or name in names) and (not students or student in students)]


def _pin_grading_data() -> None:
    """Generate the synthetic city the grader scores on once, before parallel kernels would race to write it."""
    code = "from pspnet_lib import data; data.ensure_synthetic_dataset(seed=0, num_train=200, num_val=50)"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, **KERNEL_ENV})


def _grading_module():
    """assignments/grading.py (the trusted checker and gradebook writer), imported as nbgrader_config.py does."""
    if str(COURSE_DIR) not in sys.path:
        sys.path.insert(0, str(COURSE_DIR))
    import grading

    return grading


def run_checker(course_dir: Path, name: str, student: str, timeout: float, part_timeout: int | None = None) -> bool:
    """Score one autograded submission in a fresh process that imports no student code (grading.py `check`).

    Its verdicts replace the scores nbgrader derived from the kernel's outputs, in the gradebook and the graded notebook.
    """
    command = [sys.executable, str(COURSE_DIR / "grading.py"), "check", str(course_dir), name, student]
    command += [str(part_timeout)] if part_timeout else []  # seconds per part's sandbox, like a cell's limit
    try:
        return subprocess.run(command, env={**os.environ, **KERNEL_ENV}, timeout=timeout, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        print(f"stopped after {timeout:.0f} s: the trusted checks of {name} of {student}", file=sys.stderr, flush=True)
        return False


def grade(
    course_dir: Path = COURSE_DIR,
    timeout: int | None = None,
    names: Sequence[str] = (),
    students: Sequence[str] = (),
    limits: GradingLimits | None = None,
    due: str | None = None,
) -> GradingRun:
    """Autograde submissions (all, or only `names` / `students`) on parallel kernels, then feedback and the CSV.

    One failing or runaway notebook stops nothing else. Manual grades survive a re-run (nbgrader keeps them).
    `due` (e.g. "2026-06-01 17:00:00 UTC") sets the due date of the graded assignments: later timestamp.txt files
    lose `PercentPerDayLate.percent_per_day` (nbgrader_config.py) of their score per started day.
    """
    limits = limits or GradingLimits(cell_timeout=timeout)
    selected = submissions(course_dir, _check_names(names, assignment_names(course_dir)) if names else (), students)
    unusable = unusable_submissions(course_dir, selected)  # scored 0 with the reason, never run
    assignments = sorted({name for name, _ in selected})
    selected = [job for job in selected if job not in unusable]
    timeout_option = [f"--Execute.timeout={limits.cell_timeout}"] if limits.cell_timeout else []
    failed: list[str] = []
    _pin_grading_data()
    with pinned_kernel_path(memory_gb=limits.memory_gb) as jupyter_path:
        for name in assignments:  # records each assignment's cells in the gradebook (same files as release/)
            if due and not run_nbgrader(course_dir, ["db", "assignment", "add", name, f"--duedate={due}"], jupyter_path):
                failed.append(f"{name} due date")
            if not run_nbgrader(course_dir, ["generate_assignment", name, "--force"], jupyter_path):
                failed.append(name)

        def autograde(job: tuple[str, str]) -> bool:
            name, student = job
            arguments = ["autograde", name, "--student", student, "--force", *timeout_option]
            start = time.perf_counter()
            succeeded = run_nbgrader(course_dir, arguments, jupyter_path, limits.notebook_timeout)
            executed = time.perf_counter() - start
            checked = run_checker(course_dir, name, student, limits.notebook_timeout, limits.cell_timeout)  # even after a failed run
            succeeded = succeeded and checked
            print(f"graded {name} of {student} in {time.perf_counter() - start:.0f} s (notebook {executed:.0f} s, "
                  f"trusted checks {time.perf_counter() - start - executed:.0f} s)", flush=True)
            return succeeded

        with ThreadPoolExecutor(max_workers=max(1, limits.workers)) as pool:
            outcomes = list(pool.map(autograde, selected))
        failed += [f"{name}/{student}" for (name, student), ok in zip(selected, outcomes, strict=True) if not ok]
        for name in assignments:
            for only in [["--student", student] for student in students] or [[]]:
                if not run_nbgrader(course_dir, ["generate_feedback", name, "--force", *only], jupyter_path):
                    failed.append(f"{name} feedback")
        if unusable:  # after nbgrader's feedback, which would not leave their pages alone
            grading = _grading_module()
            for (name, student), reason in unusable.items():
                grading.record_unusable(course_dir, name, student, reason)
        if not run_nbgrader(course_dir, ["export", "--to", str(GRADES_CSV)], jupyter_path):
            failed.append("export")
    feedback_dirs = sorted(path for path in (course_dir / "feedback").glob("*/*") if path.is_dir())
    return GradingRun(course_dir / GRADES_CSV, feedback_dirs, failed)


def collect(download: Path, name: str, course_dir: Path = COURSE_DIR, pattern: str = r"^(?P<student>[A-Za-z0-9.-]+)_") -> list[Path]:
    """Unpack an LMS download (a zip or folder of notebooks, or of per-student zips) into submitted/<student>/<name>/.

    The student id is the `student` group of `pattern` matched against each file's name (default: the text
    before the first underscore, as Moodle and Canvas name their downloads); the upload time stored in the zip
    becomes nbgrader's timestamp.txt, so late work is recognised. Returns the notebooks written; a submission that
    cannot be graded (`notebook_problem`) is written too, and listed in `collect_problems`.
    """
    return [notebook for notebook, _ in collect_submissions(download, name, course_dir, pattern)]


def collect_submissions(
    download: Path, name: str, course_dir: Path = COURSE_DIR, pattern: str = r"^(?P<student>[A-Za-z0-9.-]+)_"
) -> list[tuple[Path, str | None]]:
    """`collect`, returning (notebook written, why it cannot be graded or None) for every submission."""
    if name not in assignment_names(course_dir):
        raise ValueError(f"unknown assignment {name!r}: expected one of {assignment_names(course_dir)}")
    matcher = re.compile(pattern)
    if "student" not in matcher.groupindex:
        raise ValueError(f"--pattern {pattern!r} has no group named 'student', e.g. ^(?P<student>[A-Za-z0-9.-]+)_")
    graded_ids = _graded_cell_ids(course_dir, name)
    written = []
    for entry_name, content, when in _download_entries(Path(download)):
        if not entry_name.endswith(".ipynb") or "/." in f"/{entry_name}" or "__MACOSX" in entry_name:
            continue
        found = next((matcher.search(part) for part in reversed(Path(entry_name).parts) if matcher.search(part)), None)
        if found is None:
            raise ValueError(f"{download}: cannot find a student id in {entry_name!r} with pattern {pattern!r}")
        student = found["student"]
        if not student or student.startswith(".") or "/" in student or "\\" in student:
            raise ValueError(f"{download}: {entry_name!r} gives the student id {student!r}: expected a name, not a path")
        folder = course_dir / "submitted" / student / name
        folder.mkdir(parents=True, exist_ok=True)
        notebook = folder / f"{name}.ipynb"
        notebook.write_bytes(content)
        if when is not None:
            (folder / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S UTC"))
        written.append((notebook, entry_name, notebook_problem(content, name, graded_ids)))
    if not written:
        raise ValueError(f"{download} holds no .ipynb file: expected the LMS download of {name}")
    for notebook, entry_name, problem in written:
        if problem:
            print(f"{notebook.parent.parent.name}: {entry_name}: {problem}: it scores 0 when graded", file=sys.stderr)
    return [(notebook, problem) for notebook, _, problem in written]


def _graded_cell_ids(course_dir: Path, name: str) -> set[str]:
    """The nbgrader grade ids of the answer and test cells of assignment `name` (its source notebooks); locked
    cells alone are left out, since assignments share some (their `setup` cell)."""
    ids = set()
    for path in (course_dir / "source" / name).glob("*.ipynb"):
        for cell in json.loads(path.read_text()).get("cells", []):
            nbgrader = cell.get("metadata", {}).get("nbgrader", {})
            if nbgrader.get("grade_id") and (nbgrader.get("grade") or nbgrader.get("solution")):
                ids.add(nbgrader["grade_id"])
    return ids


def notebook_problem(content: bytes, name: str, graded_ids: set[str]) -> str | None:
    """Why a submitted notebook of assignment `name` cannot be graded (empty, not JSON, no cells, another
    assignment's), or None when it is a notebook holding at least one of `graded_ids` (its graded cells)."""
    if not content.strip():
        problem = "the file is empty"
    else:
        try:
            notebook = json.loads(content)
        except (ValueError, UnicodeDecodeError):
            return "not a notebook (the file is not JSON)"
        cells = notebook.get("cells") if isinstance(notebook, dict) else None
        if not isinstance(cells, list) or not cells:
            problem = "a notebook without cells"
        else:
            ids = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in cells if isinstance(cell, dict)}
            problem = None if not graded_ids or ids & graded_ids else f"not a notebook of {name} (none of its graded cells)"
    return problem


def unusable_submissions(course_dir: Path, selected: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Why each (assignment, student) of `selected` cannot be graded (`notebook_problem` of its notebooks), by pair;
    a submission folder without a notebook is one too. Usable submissions are left out."""
    problems = {}
    for name, student in selected:
        graded_ids = _graded_cell_ids(course_dir, name)
        notebooks = sorted((course_dir / "submitted" / student / name).glob("*.ipynb"))
        found = [f"{path.name}: {problem}" for path in notebooks if (problem := notebook_problem(path.read_bytes(), name, graded_ids))]
        if not notebooks:
            found = ["no .ipynb file in the submission folder"]
        if found:
            problems[(name, student)] = "; ".join(found)
    return problems


def _download_entries(download: Path):
    """(path inside the download, bytes, upload time or None) of every file, opening zips inside zips."""
    import datetime
    import io
    import zipfile

    def opened(source, shown: str) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError) as error:
            raise ValueError(f"{shown} is not a readable zip file ({error}): expected the LMS download of the submissions") from error

    def from_zip(archive: zipfile.ZipFile, prefix: str):
        for info in archive.infolist():
            if info.is_dir():
                continue
            try:
                content = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError) as error:  # RuntimeError: an encrypted member
                raise ValueError(f"{download}: cannot read {prefix}{info.filename} from the zip ({error})") from error
            when = datetime.datetime(*info.date_time, tzinfo=datetime.UTC)
            if info.filename.endswith(".zip"):
                inner = opened(io.BytesIO(content), f"{download}: {prefix}{info.filename}")
                yield from from_zip(inner, prefix + Path(info.filename).stem + "/")
            else:
                yield prefix + info.filename, content, when

    if not download.exists():
        raise ValueError(f"{download} does not exist: expected the LMS download of the submissions (a .zip or a folder)")
    if download.is_dir():
        for path in sorted(download.rglob("*")):
            if path.suffix == ".zip":
                yield from from_zip(opened(path, str(path)), path.relative_to(download).with_suffix("").as_posix() + "/")
            elif path.is_file():
                yield path.relative_to(download).as_posix(), path.read_bytes(), None
    elif download.suffix == ".zip":
        yield from from_zip(opened(download, str(download)), "")
    else:
        raise ValueError(f"{download} is neither a folder nor a .zip: expected the LMS download of the submissions")


def _kit_sources(project_dir: Path) -> list[Path]:
    """The files and folders of `project_dir` that go into the student kit; ValueError naming a missing one."""
    paths = [project_dir / name for name in (*KIT_FILES, *KIT_FOLDERS)]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise ValueError(f"cannot build the student kit: {missing} missing (expected a checkout of pspnet-course)")
    return paths


def student_kit(
    output: Path = DEFAULT_KIT_DIR, project_dir: Path = PROJECT_DIR, make_zip: bool = True, names: Sequence[str] = ()
) -> Path:
    """Write what students get (released assignments `names`, default all) into `output` and `output`.zip."""
    selected = _check_names(names, assignment_names(project_dir / "assignments"))
    sources = _kit_sources(project_dir)
    shown, output = output, check_kit_output(Path(output), project_dir)
    if output.exists():  # a kit written before (check_kit_output made sure): replaced as a whole
        shutil.rmtree(output)
    output.mkdir(parents=True)
    (output / KIT_MARKER).write_text("Written by `course.py kit`: the next `kit` run replaces this folder.\n")
    for path in sources:
        target = output / path.relative_to(project_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.name == "release":
            for name in selected:
                shutil.copytree(path / name, target / name, ignore=KIT_SKIPPED)
        elif path.is_dir():
            shutil.copytree(path, target, ignore=KIT_SKIPPED)
        else:
            shutil.copy2(path, target)
    shutil.copy2(KIT_README, output / "assignments" / "README.md")
    if make_zip:
        shutil.make_archive(str(output), "zip", root_dir=output.parent, base_dir=output.name)
    return Path(shown)


def check_kit_output(output: Path, project_dir: Path = PROJECT_DIR) -> Path:
    """`output` resolved, when `kit` may write it: a new or empty folder, or a kit folder it wrote (KIT_MARKER).

    ValueError naming --output as typed for anything else: a file, a folder holding other files, the project or a
    folder containing it, a folder inside the project but not under dist/, or an existing `output`.zip that is not
    the zip of a kit written there.
    """
    resolved, project = output.resolve(), project_dir.resolve()
    if resolved == project or resolved in project.parents:
        raise ValueError(f"--output {output} holds the project itself: choose a new folder, e.g. dist/student-kit")
    if project in resolved.parents and "dist" not in resolved.relative_to(project).parts:
        raise ValueError(f"--output {output} is inside the project but not under dist/: choose dist/<name> or a folder elsewhere")
    if resolved.exists() and not resolved.is_dir():
        raise ValueError(f"--output {output} is a file: expected a folder for the student kit")
    ours = is_kit_folder(resolved)
    if resolved.is_dir() and any(resolved.iterdir()) and not ours:
        raise ValueError(
            f"--output {output} already holds files that `kit` did not write: choose a new or empty folder"
        )
    archive = resolved.parent / f"{resolved.name}.zip"
    if archive.exists() and not (ours and archive.is_file()):
        raise ValueError(f"--output {output}: {output}.zip already exists and is not a kit's zip: move it or choose another folder")
    return resolved


def is_kit_folder(folder: Path) -> bool:
    """True when `folder` holds a student kit written by `kit` (its marker, or the kit's README of older kits)."""
    if (folder / KIT_MARKER).is_file():
        return True
    readme = folder / "assignments" / "README.md"
    return readme.is_file() and readme.read_bytes() == KIT_README.read_bytes()


def _parser() -> argparse.ArgumentParser:
    """Command-line interface: `release [NAME ...]` and `grade [--timeout S]`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--course-dir", type=Path, default=COURSE_DIR, help="nbgrader course directory")
    commands = parser.add_subparsers(dest="command", required=True)
    release_parser = commands.add_parser("release", help="generate the student versions into release/")
    release_parser.add_argument("names", nargs="*", help="assignments to release (default: all in source/)")
    grade_parser = commands.add_parser("grade", help="autograde submitted/, write feedback/ and grades.csv")
    grade_parser.add_argument("names", nargs="*", help="assignments to grade (default: every one with submissions)")
    grade_parser.add_argument("--student", action="append", default=[], help="grade only this student (repeatable)")
    grade_parser.add_argument("--timeout", type=int, default=None, help="seconds per cell before a cell is stopped")
    grade_parser.add_argument("--notebook-timeout", type=float, default=3600.0, help="seconds per notebook")
    grade_parser.add_argument("--memory-gb", type=float, default=6.0, help="memory limit of each kernel (0: none)")
    grade_parser.add_argument("--workers", type=int, default=2, help="notebooks graded at once (one per core)")
    grade_parser.add_argument("--due", default=None, help='due date of the graded assignments, "YYYY-MM-DD HH:MM:SS UTC"')
    collect_parser = commands.add_parser("collect", help="unpack an LMS download into submitted/<student>/<name>/")
    collect_parser.add_argument("name", help="the assignment the download holds")
    collect_parser.add_argument("download", type=Path, help="the LMS download: a .zip or a folder")
    collect_parser.add_argument("--pattern", default=r"^(?P<student>[A-Za-z0-9.-]+)_",
                                help="regular expression whose group 'student' finds the student id in a file name")
    kit_parser = commands.add_parser("kit", help="write the student kit (no solutions) and its zip")
    kit_parser.add_argument("--output", type=Path, default=DEFAULT_KIT_DIR, help="kit folder (default: dist/student-kit)")
    kit_parser.add_argument("--no-zip", action="store_true", help="write the folder only")
    kit_parser.add_argument("names", nargs="*", help="assignments handed out so far (default: all)")
    return parser


def parse_due(text: str) -> str:
    """`--due` as nbgrader's "YYYY-MM-DD HH:MM:SS UTC"; ValueError naming it unless it is an ISO date and time.

    "2026-06-01 17:00", "2026-06-01T17:00:00+02:00" and "2026-06-01 17:00:00 UTC" are accepted (no offset: UTC).
    """
    import datetime

    try:
        when = datetime.datetime.fromisoformat(re.sub(r"\s*(UTC|Z)$", "", text.strip(), flags=re.I))
    except ValueError:
        raise ValueError(
            f'--due {text!r} is not a date: expected "YYYY-MM-DD HH:MM:SS UTC", e.g. "2026-06-01 17:00:00 UTC"'
        ) from None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def check_grade_arguments(arguments: argparse.Namespace, course_dir: Path) -> None:
    """ValueError naming the first `grade` argument that cannot work: an unknown assignment, a student without a
    submission (of the named assignments), or a limit that is not positive."""
    names = _check_names(arguments.names, assignment_names(course_dir)) if arguments.names else []
    submitted = submissions(course_dir, names)
    students = sorted({student for _, student in submitted})
    missing = [student for student in arguments.student if student not in students]
    if missing:
        which = f" of {', '.join(names)}" if names else ""
        raise ValueError(
            f"--student {missing[0]}: no submission{which} in {course_dir / 'submitted'} "
            f"(students who submitted: {', '.join(students) or 'none'})"
        )
    for option, value in (("--timeout", arguments.timeout), ("--notebook-timeout", arguments.notebook_timeout),
                          ("--workers", arguments.workers)):
        if value is not None and not value > 0:
            raise ValueError(f"{option} must be a positive number, got {value}")
    if not arguments.memory_gb >= 0:
        raise ValueError(f"--memory-gb must be >= 0 (0: no limit), got {arguments.memory_gb}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the requested command; bad input is one `error:` line and exit status 1, and so is a failed grading."""
    arguments = _parser().parse_args(argv)
    try:
        return run_command(arguments)
    except (ValueError, OSError) as error:  # what a user's input can cause; nbgrader's own failures are logged
        print(f"error: {error}", file=sys.stderr)
        return 1


def run_command(arguments: argparse.Namespace) -> int:
    """The body of `main`: run one parsed command."""
    course_dir = arguments.course_dir.resolve()
    if not (course_dir / "source").is_dir():
        raise ValueError(f"--course-dir {arguments.course_dir}: no source/ folder there (expected an nbgrader course directory)")
    if arguments.command == "release":
        for folder in release(course_dir, arguments.names):
            print(f"released {folder.relative_to(course_dir)}")
        return 0
    if arguments.command == "kit":
        folder = student_kit(arguments.output, make_zip=not arguments.no_zip, names=arguments.names)
        print(f"student kit: {folder}" + ("" if arguments.no_zip else f" and {folder}.zip"))
        return 0
    if arguments.command == "collect":
        collected = collect_submissions(arguments.download, arguments.name, course_dir, arguments.pattern)
        bad = [notebook for notebook, problem in collected if problem]
        print(f"collected {len(collected)} notebook(s) into {course_dir / 'submitted'}"
              + (f"; {len(bad)} cannot be graded (listed above)" if bad else ""))
        return 1 if bad else 0
    check_grade_arguments(arguments, course_dir)
    due = parse_due(arguments.due) if arguments.due is not None else None
    selected = submissions(course_dir, arguments.names, arguments.student)
    for (name, student), problem in unusable_submissions(course_dir, selected).items():
        print(f"{student}: {name}: {problem}: it cannot be graded", file=sys.stderr, flush=True)
    limits = GradingLimits(arguments.timeout, arguments.notebook_timeout, arguments.memory_gb, arguments.workers)
    run = grade(course_dir, names=arguments.names, students=arguments.student, limits=limits, due=due)
    print(f"grades: {run.grades_csv}\nfeedback: {len(run.feedback_dirs)} submission(s) under {course_dir / 'feedback'}")
    print(f"A3 and A4 were scored on {GRADED_DATA}")
    if run.failed:
        print(f"could not finish grading: {', '.join(run.failed)} (see the nbgrader log above)", file=sys.stderr)
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
