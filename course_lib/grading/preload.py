"""Imported once by the grading fork server (``batch.py``): nbgrader and nbconvert imported, the feedback templates
compiled, so that each grading process forked from it starts warm. Importing this module does that work."""

from . import feedback, run  # noqa: F401  (run imports nbgrader, nbconvert, nbclient)

feedback.warm()
