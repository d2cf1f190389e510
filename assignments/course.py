"""Release and grade the course's nbgrader assignments.

    python assignments/course.py release [NAME ...]   # source/<NAME>/ -> release/<NAME>/ (student versions)
    python assignments/course.py grade [--timeout S]   # submitted/*/<NAME>/ -> autograded/, feedback/, grades CSV
    python assignments/course.py kit [--output DIR]    # what students get: notebooks, library, released assignments

Each step runs nbgrader's own command line (generate_assignment, autograde, generate_feedback, export) in the
course directory, whose `nbgrader_config.py` holds the course settings. Notebooks execute on a `python3` kernel
pinned to the Python running this script, with TensorFlow's log lines silenced.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

COURSE_DIR = Path(__file__).resolve().parent
GRADES_CSV = Path("feedback") / "grades.csv"
KERNEL_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
PROJECT_DIR = COURSE_DIR.parent
DEFAULT_KIT_DIR = PROJECT_DIR / "dist" / "student-kit"
# What students receive, relative to the project: never source/, the grader, gradebooks, submissions or feedback.
KIT_FILES = ("README.md", "LICENSE", "pyproject.toml", "Makefile", "environment.yml")
KIT_FOLDERS = ("pspnet_lib", "notebooks", "assignments/release")
KIT_README = COURSE_DIR / "kit_readme.md"  # becomes assignments/README.md in the kit (the students' instructions)
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


def _kernel_spec(python: str) -> dict:
    """A `python3` kernel spec running `python`, with the course's environment variables."""
    return {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (pspnet-course)",
        "language": "python",
        "env": KERNEL_ENV,
    }


@contextmanager
def pinned_kernel_path(python: str = sys.executable) -> Iterator[str]:
    """A temporary JUPYTER_PATH whose `python3` kernel is `python`, so no other `python3` kernel spec can win."""
    with tempfile.TemporaryDirectory(prefix="pspnet-kernels-") as jupyter_path:
        kernel_dir = Path(jupyter_path) / "kernels" / "python3"
        kernel_dir.mkdir(parents=True)
        (kernel_dir / "kernel.json").write_text(json.dumps(_kernel_spec(python), indent=1))
        yield jupyter_path


def nbgrader_environment(jupyter_path: str) -> dict[str, str]:
    """Environment for nbgrader: this Python's bin/ first on PATH (nbgrader calls alembic), the pinned kernels."""
    bin_dir = str(Path(sys.executable).parent)
    environment = {**os.environ, **KERNEL_ENV, "JUPYTER_PATH": jupyter_path}
    environment["PATH"] = os.pathsep.join([bin_dir, environment.get("PATH", "")])
    return environment


def run_nbgrader(course_dir: Path, arguments: Sequence[str], jupyter_path: str) -> bool:
    """Run `nbgrader <arguments>` in `course_dir`; True when it succeeded (its log goes to our stderr)."""
    command = [sys.executable, "-m", "nbgrader", *arguments]
    print("$ nbgrader " + " ".join(arguments), flush=True)
    completed = subprocess.run(command, cwd=course_dir, env=nbgrader_environment(jupyter_path), check=False)
    return completed.returncode == 0


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


def grade(course_dir: Path = COURSE_DIR, timeout: int | None = None) -> GradingRun:
    """Autograde every submission, write feedback HTML per student and the grades CSV; one failure stops nothing."""
    timeout_option = [f"--Execute.timeout={timeout}"] if timeout else []
    failed: list[str] = []
    with pinned_kernel_path() as jupyter_path:
        for name in submitted_assignments(course_dir):
            # Regenerating (same files as the committed release) records the assignment's cells in the gradebook.
            steps = [
                ["generate_assignment", name, "--force"],
                ["autograde", name, "--force", *timeout_option],
                ["generate_feedback", name, "--force"],
            ]
            if not all([run_nbgrader(course_dir, step, jupyter_path) for step in steps]):
                failed.append(name)
        (course_dir / GRADES_CSV).parent.mkdir(parents=True, exist_ok=True)
        if not run_nbgrader(course_dir, ["export", "--to", str(GRADES_CSV)], jupyter_path):
            failed.append("export")
    feedback_dirs = sorted(path for path in (course_dir / "feedback").glob("*/*") if path.is_dir())
    return GradingRun(course_dir / GRADES_CSV, feedback_dirs, failed)


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
    output = Path(output).resolve()
    if project_dir.resolve() in (output, *output.parents) and "dist" not in output.relative_to(project_dir.resolve()).parts:
        raise ValueError(f"--output {output} is inside the project but not under dist/: choose dist/<name> or a folder elsewhere")
    shutil.rmtree(output, ignore_errors=True)
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
    return output


def _parser() -> argparse.ArgumentParser:
    """Command-line interface: `release [NAME ...]` and `grade [--timeout S]`."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--course-dir", type=Path, default=COURSE_DIR, help="nbgrader course directory")
    commands = parser.add_subparsers(dest="command", required=True)
    release_parser = commands.add_parser("release", help="generate the student versions into release/")
    release_parser.add_argument("names", nargs="*", help="assignments to release (default: all in source/)")
    grade_parser = commands.add_parser("grade", help="autograde submitted/, write feedback/ and the grades CSV")
    grade_parser.add_argument("--timeout", type=int, default=None, help="seconds per cell before a cell is stopped")
    kit_parser = commands.add_parser("kit", help="write the student kit (no solutions) and its zip")
    kit_parser.add_argument("--output", type=Path, default=DEFAULT_KIT_DIR, help="kit folder (default: dist/student-kit)")
    kit_parser.add_argument("--no-zip", action="store_true", help="write the folder only")
    kit_parser.add_argument("names", nargs="*", help="assignments handed out so far (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the requested command; exit status 1 when any assignment could not be graded."""
    arguments = _parser().parse_args(argv)
    course_dir = arguments.course_dir.resolve()
    if arguments.command == "release":
        for folder in release(course_dir, arguments.names):
            print(f"released {folder.relative_to(course_dir)}")
        return 0
    if arguments.command == "kit":
        folder = student_kit(arguments.output, make_zip=not arguments.no_zip, names=arguments.names)
        print(f"student kit: {folder}" + ("" if arguments.no_zip else f" and {folder}.zip"))
        return 0
    run = grade(course_dir, arguments.timeout)
    print(f"grades: {run.grades_csv}\nfeedback: {len(run.feedback_dirs)} submission(s) under {course_dir / 'feedback'}")
    if run.failed:
        print(f"could not finish grading: {', '.join(run.failed)} (see the nbgrader log above)", file=sys.stderr)
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
