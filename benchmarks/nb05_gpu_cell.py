"""Runs notebook 05's setup cell and its "On your GPU" cell as they are in the notebook, on a GPU machine, in the fast
profile (the tiny model: no real weights can reach the lent GPU). Checks the GPU code path runs: the 4-bit load on
CUDA, the varlen attention, the packed training steps, the memory prediction.

    COURSE_PROFILE=fast python benchmarks/nb05_gpu_cell.py
"""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
cells = [c for c in json.loads((ROOT / "notebooks" / "05_qlora_on_a_gpu.ipynb").read_text())["cells"]
         if c["cell_type"] == "code"]
setup = "".join(cells[0]["source"])
gpu = next("".join(c["source"]) for c in cells if "if not HAS_GPU:" in "".join(c["source"]))
scope: dict = {}
exec(setup, scope)
exec(gpu, scope)
