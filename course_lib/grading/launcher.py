"""A kernel's ``argv[0]``: ``python -I -S launcher.py SPEC.json CONNECTION_FILE [kernel args...]``.

jupyter_client starts this with the notebook's folder as working directory; it reads the sandbox spec written by
``run.py`` and replaces itself with ``bwrap ... python -m ipykernel_launcher -f CONNECTION_FILE`` (see
``sandbox.launch``). Stdlib only and no site-packages, so a kernel start pays for no imports here."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sandbox  # noqa: E402  (this folder, by path: course_lib is not importable without site-packages)


def main() -> None:
    spec_file, connection_file, *extra = sys.argv[1:]
    with open(spec_file) as f:
        spec = json.load(f)
    kernel = [spec["python"], "-m", "ipykernel_launcher", "-f", connection_file, *extra]
    sandbox.launch(spec, connection_file, kernel)


if __name__ == "__main__":
    main()
