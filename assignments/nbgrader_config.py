"""nbgrader settings of the pspnet-course course directory (this folder); `course.py` runs nbgrader here."""

import os
import sys

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # grading.py: the trusted checker, the screen of answer cells and the late penalty
from grading import PERCENT_PER_DAY, HideHiddenTests, PercentPerDayLate, ScreenAnswers  # noqa: E402

c.CourseDirectory.course_id = "pspnet-course"
c.CourseDirectory.root = HERE  # source/ release/ submitted/ gradebook.db
# Files a submission brings or an earlier run left (saved predictions) are never copied: the re-run writes its own.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.npz", "*.h5", "*.keras"]

# Student versions replace solution regions with this stub.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# nbgrader's kernel only produces data: after each autograde, `course.py grade` runs `grading.py check` in a fresh
# process that imports no student code and writes every test cell's score into the gradebook (and its verdict into
# the graded notebook), replacing what nbgrader derived from the kernel's outputs. Before the kernel runs, the screen
# below refuses cells that tamper with other code: a second line of defence, not the one that decides the points.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    OverwriteCells,
    OverwriteKernelspec,
)

c.Autograde.sanitize_preprocessors = [
    ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, ScreenAnswers, CheckCellMetadata]

# Feedback shows each test's result but neither the hidden tests' code nor their tracebacks.
c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]

# Autograding: every cell gets `timeout` seconds, then the kernel is interrupted, the cell is recorded as an
# error (so its tests score 0) and grading goes on. Default mode's training cells (A3, A4) need minutes on a CPU.
c.Execute.timeout = 900
c.Execute.interrupt_on_timeout = True
c.Execute.kernel_name = "python3"
# Kernels talk over Unix sockets in a folder of this nbgrader process, not TCP: two kernels started at the same
# moment (parallel grading, another test process) can otherwise pick the same free port, and one dies before
# replying ("Address already in use"). The path is absolute: a kernel runs in its notebook's folder.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

_SOCKETS = tempfile.mkdtemp(prefix="pspnet-grading-kernels-")
atexit.register(shutil.rmtree, _SOCKETS, ignore_errors=True)
c.KernelManager.transport = "ipc"
c.KernelManager.ip = os.path.join(_SOCKETS, "kernel")

# Late work: 10 % of the score per started day after the due date (nbgrader's default is no penalty). Set a
# due date with `nbgrader db assignment add <name> --duedate="..."`; a submission's time is its timestamp.txt.
c.AssignLatePenalties.plugin_class = PercentPerDayLate
c.PercentPerDayLate.percent_per_day = PERCENT_PER_DAY  # grading.py re-applies it to the checker's scores
