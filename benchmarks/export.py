"""How long shipping takes, and what it changes: notebook 08's steps on the embedded model (fp32) with the newest
adapter notebook 04 saved: merge (checked), save as safetensors, export to GGUF f16 and q8_0, load each back with
transformers, and compare with the unmerged adapter model on the first held-out GreenLeaf tickets (max |Δlogit|,
top-1 agreement, identical greedy answers). Writes ``benchmarks/results/export.json`` with the command, the CPU and
the library versions; notebook 08 reads the timings from it.

    .venv/bin/python benchmarks/export.py --prompts 8
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("COURSE_PROFILE", "full")

import torch  # noqa: E402

from course_lib import data, models, ship, train  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine, versions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default=None, help="adapter folder (default: the newest one notebook 04 saved)")
    parser.add_argument("--prompts", type=int, default=8, help="held-out tickets to compare on")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "export.json"))
    args = parser.parse_args()
    info = machine()
    info["torch_threads"] = torch.get_num_threads()
    seconds: dict[str, float] = {}

    def timed(name, fn, *a, **k):
        start = time.perf_counter()
        out = fn(*a, **k)
        seconds[name] = round(time.perf_counter() - start, 2)
        return out

    model, tok = timed("load_base", models.load_model, "embedded", dtype=torch.float32, verbose=False)
    adapter = Path(args.adapter) if args.adapter else train.find_adapter(model.name_or_path)
    if adapter is None:
        sys.exit("No adapter of the embedded model in the course cache: run notebook 04 (full profile) first.")
    tuned = train.load_adapter(copy.deepcopy(model), adapter)
    merged, gap = timed("merge", ship.merge_adapter, tuned)
    rows = train.with_system_prompt(data.load_split("heldout")[: args.prompts], train.SHORT_SYSTEM_PROMPT)
    prompts = [r["messages"][:-1] for r in rows]
    result = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "machine": info,
              "versions": versions(("torch", "transformers", "peft", "gguf", "safetensors")),
              "adapter": str(adapter), "adapter_sha256": ship.sha256_file(adapter / "adapter_model.safetensors"),
              "merge_max_abs_logit_diff": gap, "prompts": len(prompts), "bytes": {}, "comparisons": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = timed("save_merged", ship.save_merged, merged, tok, Path(tmp) / "merged", adapter=adapter)
        result["bytes"]["adapter"] = train.size_on_disk(adapter / "adapter_model.safetensors")
        result["bytes"]["merged safetensors (fp32)"] = train.size_on_disk(folder / "model.safetensors")
        for dtype in ship.DTYPES:
            out = timed(f"export_{dtype}", ship.export, folder, Path(tmp) / f"greenleaf-{dtype}.gguf", dtype)
            result["bytes"][f"GGUF {dtype}"] = out["bytes"]
            back, _ = timed(f"load_gguf_{dtype}", ship.load_gguf, out["path"])
            cmp = timed(f"compare_{dtype}", ship.compare, tuned, back, tok, prompts, 96, stop_after_json=True)
            result["comparisons"][f"adapter vs GGUF {dtype}"] = cmp
            del back
    result["seconds"] = seconds
    result["load_average_1m_at_end"] = os.getloadavg()[0]
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(ship.format_comparison(result["comparisons"]))
    print(json.dumps(seconds), json.dumps(result["bytes"]))


if __name__ == "__main__":
    main()
