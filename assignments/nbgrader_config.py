"""nbgrader settings of the pspnet-course course directory (this folder); `course.py` runs nbgrader here."""

import os

c = get_config()  # noqa: F821 (injected by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "pspnet-course"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))  # source/ release/ submitted/ gradebook.db

# Student versions replace solution regions with this stub.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding: every cell gets `timeout` seconds, then the kernel is interrupted, the cell is recorded as an
# error (so its tests score 0) and grading goes on. Default mode's training cells (A3, A4) need minutes on a CPU.
c.Execute.timeout = 900
c.Execute.interrupt_on_timeout = True
c.Execute.kernel_name = "python3"
