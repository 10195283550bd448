"""How good is the embedded model (SmolLM2-135M-Instruct) as a judge of GreenLeaf replies? Its limits measured with
``course_lib.evaluate.judge`` on held-out tickets, on this machine's CPU.

- label pairs: the reference reply against one made worse by a rule (off-topic, no sign-off, exact refund promise,
  guarantee), each pair judged in both orders: agreement with the labels, consistency, rate of choosing A;
- length pairs: the reference reply against itself padded with two content-free sentences, both orders: how often
  the longer reply wins;
- order-averaged verdicts: P(a better) averaged over both orders, the usual fix for position bias;
- ratings: the judge's 1-5 rating (expected value over the digits) of good and flawed replies;
- written verdicts: a few pairs answered by generation and read by ``parse_verdict`` (how many name one reply).

Writes ``benchmarks/results/judge.json`` with the command, the machine (CPU flags), versions, seconds per part,
every number with its interval, and the per-pair verdicts.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/judge.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("COURSE_PROFILE", "full")

from course_lib import data, models, stats, train  # noqa: E402
from course_lib.evaluate import judge  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from machine import machine, versions  # noqa: E402

PACKAGES = ("torch", "transformers", "scikit-learn", "numpy", "ipywidgets")


def _versions() -> dict[str, str]:
    return versions(PACKAGES)


def _order_averaged(ab: list[dict], ba: list[dict]) -> list[dict]:
    """Verdicts for the (a, b) order from P(a better) averaged over both orders: (p_a + (1 - p_a of swapped)) / 2."""
    out = []
    for x, y in zip(ab, ba):
        p = (x["p_a"] + 1 - y["p_a"]) / 2
        out.append({"id": x["id"], "verdict": "A" if p >= 0.5 else "B", "p_a": p})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label-pairs", type=int, default=96)
    parser.add_argument("--length-pairs", type=int, default=48)
    parser.add_argument("--rated", type=int, default=24, help="label pairs whose two replies are also rated 1-5")
    parser.add_argument("--written", type=int, default=16, help="label pairs also judged by generated text")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="auto: what models.load_model picks on this machine (the course default)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "judge.json"))
    args = parser.parse_args()

    import torch

    threads, _ = train.cpu_threads(args.threads)
    dtype = None if args.dtype == "auto" else getattr(torch, args.dtype)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    model, tok = models.load_model("embedded", dtype=dtype, verbose=False)
    heldout = data.load_split("heldout")
    seconds["load"] = time.perf_counter() - start

    pairs = judge.make_label_pairs(heldout, seed=args.seed, n=args.label_pairs)
    swapped = judge.swap_pairs(pairs)
    start = time.perf_counter()
    ab = judge.judge_pairs(model, tok, pairs, batch_size=args.batch_size)
    ba = judge.judge_pairs(model, tok, swapped, batch_size=args.batch_size)
    seconds["label_pairs_both_orders"] = time.perf_counter() - start

    length_pairs = judge.make_length_pairs(heldout, seed=args.seed + 1, n=args.length_pairs)
    start = time.perf_counter()
    len_ab = judge.judge_pairs(model, tok, length_pairs, batch_size=args.batch_size)
    len_ba = judge.judge_pairs(model, tok, judge.swap_pairs(length_pairs), batch_size=args.batch_size)
    seconds["length_pairs_both_orders"] = time.perf_counter() - start

    rated = pairs[: args.rated]
    items = [{"id": f"{p['id']}:{side}", "ticket": p["ticket"], "reply": p[side.lower()]}
             for p in rated for side in ("A", "B")]
    start = time.perf_counter()
    scores = judge.judge_scores(model, tok, items, batch_size=args.batch_size)
    seconds["ratings"] = time.perf_counter() - start
    by_side = [(scores[2 * k]["expected"], scores[2 * k + 1]["expected"]) for k in range(len(rated))]
    good = [a if p["better"] == "A" else b for p, (a, b) in zip(rated, by_side)]
    bad = [b if p["better"] == "A" else a for p, (a, b) in zip(rated, by_side)]
    diff, low, high = stats.paired_bootstrap_diff(good, bad)

    written_pairs = pairs[: args.written] + swapped[: args.written]
    start = time.perf_counter()
    outputs = models.generate(model, tok, [judge.pair_messages(p["ticket"], p["a"], p["b"]) for p in written_pairs],
                              max_new_tokens=8, batch_size=args.batch_size)
    seconds["written_verdicts"] = time.perf_counter() - start
    written = []
    for p, text in zip(written_pairs, outputs):
        try:
            verdict, error = judge.parse_verdict(text, p["id"]), None
        except judge.JudgeError as err:
            verdict, error = None, "names both" if "names both" in str(err) else "names neither"
        written.append({"id": p["id"], "text": text, "verdict": verdict, "better": p["better"], "refused": error})
    parsed = [w for w in written if w["verdict"]]

    agreement_ab = judge.agreement_with_labels(ab, pairs)
    agreement_both = judge.agreement_with_labels(ab + ba, pairs + swapped)
    averaged = judge.agreement_with_labels(_order_averaged(ab, ba), pairs)
    bias = judge.position_bias(ab, ba)
    length = judge.length_bias(len_ab + len_ba, length_pairs + judge.swap_pairs(length_pairs))
    length_bias_by_order = {"longer_is_A_first": judge.length_bias(len_ab, length_pairs)["longer_wins"],
                            "swapped": judge.length_bias(len_ba, judge.swap_pairs(length_pairs))["longer_wins"]}
    all_verdicts = ab + ba + len_ab + len_ba
    seconds["total"] = sum(seconds.values())
    record = {
        "command": " ".join(["OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "<unset>"), ".venv/bin/python",
                             *(shlex.quote(a) for a in sys.argv)]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {**machine(), "threads": threads, "device": str(model.device),
                    "dtype": str(next(model.parameters()).dtype).replace("torch.", "")},
        "versions": _versions(),
        "settings": {"model": "embedded (SmolLM2-135M-Instruct)", "label_pairs": len(pairs),
                     "length_pairs": len(length_pairs), "rated_items": len(items), "written_pairs": len(written_pairs),
                     "batch_size": args.batch_size, "seed": args.seed, "rubric_lines": len(judge.RUBRIC.splitlines())},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "agreement_with_labels": {"a_b_order": agreement_ab, "both_orders": agreement_both,
                                  "order_averaged": averaged, "chance": 0.5},
        "position_bias": bias,
        "length_bias": {**length, "by_order": length_bias_by_order, "fillers_per_reply": 2,
                        "reading": "above 0.5: the padded reply (no better by the rubric) is preferred"},
        "answer_mass": {"mean": sum(v["mass"] for v in all_verdicts) / len(all_verdicts),
                        "min": min(v["mass"] for v in all_verdicts),
                        "what": "P('A') + P('B') as the judge's first token: how much it meant to answer at all"},
        "exact_ties": sum(v["p_a"] == 0.5 for v in all_verdicts),
        "ratings": {"mean_expected_good": sum(good) / len(good), "mean_expected_flawed": sum(bad) / len(bad),
                    "good_minus_flawed": [diff, low, high], "verdict": stats.verdict(diff, low, high),
                    "argmax_counts": {d: sum(s["argmax"] == int(d) for s in scores) for d in judge.DIGITS}},
        "written_verdicts": {"n": len(written), "named_one_reply": len(parsed),
                             "agreement_among_named": (sum(w["verdict"] == w["better"] for w in parsed) / len(parsed)
                                                       if parsed else None),
                             "a_rate_among_named": (sum(w["verdict"] == "A" for w in parsed) / len(parsed)
                                                    if parsed else None),
                             "items": written},
        "label_pair_verdicts": {
            "columns": ["id", "flaw", "better (a,b order)", "verdict a,b", "p_a a,b", "verdict b,a", "p_a b,a"],
            "rows": [[p["id"], p["flaw"], p["better"], x["verdict"], round(x["p_a"], 4), y["verdict"],
                      round(y["p_a"], 4)] for p, x, y in zip(pairs, ab, ba)]},
        "length_pair_verdicts": {
            "columns": ["id", "longer (a,b order)", "verdict a,b", "p_a a,b", "verdict b,a", "p_a b,a"],
            "rows": [[p["id"], p["longer"], x["verdict"], round(x["p_a"], 4), y["verdict"], round(y["p_a"], 4)]
                     for p, x, y in zip(length_pairs, len_ab, len_ba)]},
    }
    out = Path(args.out)
    out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    summary = {k: record[k] for k in ("seconds", "position_bias", "exact_ties")}
    summary["agreement"] = {k: stats.format_score(v["accuracy"], v["interval"])
                            for k, v in record["agreement_with_labels"].items() if isinstance(v, dict)}
    summary["per_flaw_both_orders"] = agreement_both["per_flaw"]
    summary["length_bias"] = stats.format_score(length["longer_wins"], length["interval"])
    summary["ratings"] = record["ratings"]["verdict"]
    summary["written"] = {k: v for k, v in record["written_verdicts"].items() if k != "items"}
    print(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
