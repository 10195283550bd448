"""nbgrader's feedback page (its ``feedback`` template: scores, comments, the executed notebook), rendered with one
HTML exporter per grading server rather than one per submission.

``nbgrader generate_feedback`` builds a new exporter, and so compiles its Jinja templates again, for every student
(about 0.2 s of CPU each). ``warm()`` runs in the fork server that every grading process is forked from, so each
process inherits an exporter whose templates are already compiled. Same preprocessors as nbgrader's
``GenerateFeedback`` (``GetGrades``, ``CSSHTMLHeaderPreprocessor``), plus ``ClearHiddenTests`` unless the instructor
asks to show them.
"""

from __future__ import annotations

import os

import nbformat

_EXPORTER = None


def exporter():
    global _EXPORTER
    if _EXPORTER is None:
        import nbgrader
        from nbconvert.exporters import HTMLExporter
        from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
        from traitlets.config import Config

        base = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader")
        cfg = Config()
        cfg.HTMLExporter.template_name = "feedback"
        cfg.HTMLExporter.extra_template_basedirs = [os.path.join(base, "templates")]
        cfg.HTMLExporter.extra_template_paths = [os.path.join(base, "static", "node_modules", "bootstrap", "dist",
                                                              "css")]
        _EXPORTER = HTMLExporter(config=cfg)
        _EXPORTER.register_preprocessor(CSSHTMLHeaderPreprocessor(), enabled=True)
    return _EXPORTER


def render(nb: nbformat.NotebookNode, *, db_url: str, assignment: str, notebook: str, student: str,
           hide_hidden_tests: bool = True) -> str:
    """The feedback HTML of one autograded notebook whose grades are in ``db_url``."""
    from nbgrader.preprocessors import ClearHiddenTests, GetGrades

    resources = {"unique_key": notebook, "output_files_dir": f"{notebook}_files",
                 "nbgrader": {"student": student, "assignment": assignment, "notebook": notebook, "db_url": db_url}}
    nb, resources = GetGrades().preprocess(nb, resources)
    if hide_hidden_tests:
        nb, resources = ClearHiddenTests(enforce_metadata=False).preprocess(nb, resources)
    body, _ = exporter().from_notebook_node(nb, resources)
    return body


def warm() -> None:
    """Compile the templates once (in the fork server) by rendering a notebook without grades."""
    from nbformat.v4 import new_code_cell, new_notebook

    exporter().from_notebook_node(new_notebook(cells=[new_code_cell("1")]),
                                  {"nbgrader": {"score": 0, "max_score": 0, "late_penalty": 0}})
