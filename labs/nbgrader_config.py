"""nbgrader configuration of the course's labs (read by every `nbgrader` command run in this folder).

Paths are relative to this file, so the course also works when the folder is copied elsewhere (the tests do that).
nbgrader runs the `alembic` command from PATH: put the virtual environment's bin folder on PATH first
(`source .venv/bin/activate`, or `PATH=$PWD/.venv/bin:$PATH`).
"""

import os

from nbgrader.preprocessors import ClearMarkScheme, ClearOutput, IncludeHeaderFooter, LockCells

c = get_config()  # noqa: F821 (traitlets provides get_config when it reads this file)

HERE = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "finetune-course"
c.CourseDirectory.root = HERE
c.CourseDirectory.source_directory = "source"  # instructor versions, committed
c.CourseDirectory.release_directory = "release"  # student versions, generated, never committed
c.CourseDirectory.submitted_directory = "submitted"  # submitted/<student>/<lab>/<lab>.ipynb
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# `nbgrader generate_solution` writes the solved copies straight into the repository's solutions/ folder.
c.CourseDirectory.solution_directory = os.path.join("..", "solutions")

# The gradebook (student ids and scores) stays out of git: labs/gradebook/ is in .gitignore.
GRADEBOOK_DIR = os.path.join(HERE, "gradebook")
os.makedirs(GRADEBOOK_DIR, exist_ok=True)  # sqlite creates the file but not its folder
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(GRADEBOOK_DIR, "gradebook.db")

# A cell may take longer than nbgrader's default 30 s on a slow laptop (the labs need about 10 s at most).
c.Execute.timeout = 300

# Solved copies are committed without outputs, like the notebooks: generate_solution's default also runs them.
c.GenerateSolution.preprocessors = [IncludeHeaderFooter, LockCells, ClearOutput, ClearMarkScheme]
