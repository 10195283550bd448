"""The course's training recipe (``train_sft``) on several processes: data-parallel (DDP) or sharded (FSDP).

One process per GPU runs this module; the launcher starts them and says how to wrap the model::

    accelerate launch --config_file configs/accelerate/ddp.yaml --num_processes 2 -m course_lib.train.launch --shape 1b
    torchrun --nproc_per_node 2 -m course_lib.train.launch --shape 1b                       # the same, DDP
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m course_lib.train.launch --shape 8b --method full

Every process builds the model, reads the same GreenLeaf rows and calls ``train_sft``. transformers' Trainer sees
``WORLD_SIZE`` / ``LOCAL_RANK`` (and accelerate's ``FSDP_*`` settings), wraps the model in DDP or FSDP and hands
each process its share of every batch; ``train_sft`` splits the preset's batch between the processes, so an
optimiser step sees the same examples whatever the number of GPUs. ``--record FILE`` appends what a scaling
measurement needs (tokens/s summed over processes, peak memory of each, the loss history, versions, the command).
``measurement_commands`` is the whole 1-GPU / N-GPU / FSDP series (``course multi-gpu``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from course_lib.train.presets import PRESETS, TrainSetupError, choose_preset
from course_lib.train.trainer import is_main_process, train_sft, world_size

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "accelerate"
TINY_SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=512, tie_word_embeddings=True)
SHAPES = ("tiny", "135m", "1b", "8b")  # random weights of a published shape (course_lib.lora's configs)


def shape_config(name: str):
    """The shape ``name`` (published configs from ``course_lib.lora``; "tiny" for CPU smoke runs) as a LlamaConfig.
    Speed and memory do not depend on the weights' values: benchmarks build random weights of these shapes."""
    from transformers import LlamaConfig

    from course_lib import lora

    if name not in SHAPES:
        raise TrainSetupError(f"Unknown shape {name!r}: use one of {SHAPES}.")
    shape = {"tiny": TINY_SHAPE, "135m": lora.SMOLLM2_135M, "1b": lora.LLAMA_1B, "8b": lora.LLAMA_3_1_8B}[name]
    return LlamaConfig(**shape, max_position_embeddings=4096, rms_norm_eps=1e-5, torch_dtype="bfloat16")


def local_device() -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` on a GPU machine (one GPU per process), else the CPU."""
    if torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true"):
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def load_for_launch(model: str | None, shape: str | None):
    """``(model, tokenizer)`` on this process's device: the course model ``model`` (a name or folder that
    ``models.load_model`` knows), or random weights of ``shape`` (bf16 on a GPU) with the tiny model's tokenizer
    (the embedded model's vocabulary, 49,152). Every process builds the same weights (seed 0)."""
    from transformers import LlamaForCausalLM

    from course_lib import models

    device = local_device()
    if shape is None:
        return models.load_model(model, device=str(device), verbose=is_main_process(),  # CPU: fp32 master weights
                                 dtype=torch.float32 if device.type == "cpu" else None)
    tokenizer = models.load_tokenizer("tiny")
    config = shape_config(shape)
    config.vocab_size, config.max_position_embeddings = len(tokenizer), 2048
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    torch.manual_seed(0)
    with device:
        net = LlamaForCausalLM(config)
    if device.type == "cuda":
        net = net.to(torch.bfloat16)  # a checkpoint from the hub arrives in bf16 too
    net.config._attn_implementation = "sdpa"
    net.name_or_path = f"random-{shape}"
    return net, tokenizer


def shared_output_dir(method: str, name: str) -> Path:
    """One run folder for all processes: rank 0's timestamp, sent to the others (each process stamping its own
    could name different folders, a second apart)."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    from course_lib.paths import cache_dir

    stamp = [time.strftime("%Y%m%d-%H%M%S")]
    if world_size() > 1:
        PartialState(cpu=local_device().type == "cpu")  # joins the process group the Trainer will use
        broadcast_object_list(stamp, from_process=0)
    return cache_dir() / "runs" / f"launch-{method}-{name}-{world_size()}p-{stamp[0]}"


class StepClock:
    """A Trainer callback that notes the wall time at the end of each optimiser step (after a GPU sync): the
    tokens/s of the steps after warm-up, without the first steps' compilation and allocation. ``checkpoints=False``
    also cancels the checkpoint the Trainer writes at the last step (an 8B full fine-tune's would be ~90 GB)."""

    def __init__(self, checkpoints: bool = True):
        from transformers import TrainerCallback

        clock = self
        self.times: dict[int, float] = {}

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                clock.times[state.global_step] = time.perf_counter()
                control.should_save = control.should_save and checkpoints

        self.callback = _Callback()


def peak_memory_gib() -> float:
    """This process's peak memory in GiB: allocated by PyTorch on its GPU, or the process's peak RSS on a CPU."""
    if local_device().type == "cuda":
        return round(torch.cuda.max_memory_allocated(local_device()) / 2**30, 2)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)  # Linux: KiB


def local_parameter_elements(model: torch.nn.Module) -> int:
    """Parameter elements this process holds: the whole model under DDP, about 1/N of it under FSDP (its
    parameters are DTensors, of which each process keeps one slice)."""
    return sum(int(getattr(p, "to_local", lambda: p)().numel()) for p in model.parameters())


def _gathered(value: Any) -> list:
    if world_size() == 1:
        return [value]
    from accelerate.utils import gather_object

    return gather_object([value])


def _environment() -> dict[str, Any]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, Any] = {"python": platform.python_version(), "load_average_1m": round(os.getloadavg()[0], 2)}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = "not installed"
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    info["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                        if line.startswith("model name")), platform.processor())
    info["avx512_bf16"] = "avx512_bf16" in cpuinfo
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def launch_command() -> str:
    """The command that started this process: the launcher's (``torchrun``, ``accelerate launch``: this process's
    parent) when there is one, else this process's own."""
    own = [sys.executable, *(["-m", __spec__.name] if sys.argv[0] == __file__ and __spec__ else sys.argv[:1]),
           *sys.argv[1:]]
    try:  # Linux; elsewhere the process's own command
        parent = [w.decode() for w in Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0") if w]
    except OSError:
        parent = []
    launched = any(Path(word).name in ("torchrun", "accelerate") or word in ("torch.distributed.run",
                   "accelerate.commands.launch") for word in parent)
    return shlex.join(parent if launched else own)


def make_record(args: argparse.Namespace, result, clock: StepClock, warmup: int) -> dict[str, Any]:
    """What a scaling measurement keeps of one run; every process calls it (peak memory is gathered)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState()  # set up by the Trainer: knows FSDP (PartialState only knows the processes)
    fsdp = getattr(state, "fsdp_plugin", None)
    tokens = {h["step"]: h["num_tokens"] for h in result.history if "num_tokens" in h}  # summed over processes
    timed = [s for s in sorted(tokens) if s >= warmup and s in clock.times]
    tps = ((tokens[timed[-1]] - tokens[timed[0]]) / (clock.times[timed[-1]] - clock.times[timed[0]])
           if len(timed) >= 2 else None)
    return {
        "model": args.model or f"random-{args.shape}", "method": args.method, "preset": asdict(result.preset),
        "world_size": result.processes, "per_process_batch": result.preset.batch_size,
        "effective_batch": result.preset.batch_size * result.preset.grad_accum * result.processes,
        "distributed": str(state.distributed_type).split(".")[-1], "device": local_device().type,
        "fsdp": None if fsdp is None else {"version": fsdp.fsdp_version, "wrap": fsdp.transformer_cls_names_to_wrap,
                                           "reshard_after_forward": fsdp.reshard_after_forward},
        "steps": args.steps, "warmup_steps": warmup, "timed_steps": (timed[-1] - timed[0]) if tps else 0,
        "tokens_per_s": round(tps) if tps else None, "tokens_per_s_whole_run": round(result.tokens_per_second),
        "real_tokens": max(tokens.values(), default=0), "seconds": round(result.seconds, 2),
        "peak_gib_per_process": _gathered(peak_memory_gib()),
        "parameter_elements_per_process": _gathered(local_parameter_elements(result.model)),
        "total_params": result.total_params,
        "memory": "torch.cuda.max_memory_allocated" if local_device().type == "cuda" else "peak RSS of the process",
        "loss": [{"step": h["step"], "loss": h["loss"]} for h in result.history if "loss" in h],
        "trainable_params": result.trainable_params, "environment": _environment(), "command": launch_command(),
        "note": args.note,
    }


def append_record(path: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append ``record`` to the ``launch_records`` list of the JSON file ``path`` (created if absent; the file's
    other keys, e.g. ``gpu_recipes.json``'s runs, are kept). Returns the file's content."""
    path = Path(path)
    content = json.loads(path.read_text()) if path.exists() else {}
    if not isinstance(content, dict):
        raise TrainSetupError(f"{path} holds a JSON {type(content).__name__}, not an object: --record appends to "
                              "the 'launch_records' list of a JSON object. Use a new file name.")
    content.setdefault("launch_records", []).append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1) + "\n")
    return content


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m course_lib.train.launch", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", help="a course model name or folder (default: the profile's model)")
    which.add_argument("--shape", choices=SHAPES, help="random weights of this shape (benchmarks)")
    parser.add_argument("--method", choices=("lora", "full", "qlora"), default="lora")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: from the hardware")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default=None,
                        help="override the preset's compute dtype (fp32: exact comparisons on a CPU)")
    parser.add_argument("--checkpointing", action="store_true", help="turn gradient checkpointing on (less memory)")
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps")
    parser.add_argument("--rows", type=int, default=0, help="GreenLeaf training rows (0: all)")
    parser.add_argument("--replay", action="store_true", help="mix the replay rows in (the course's GPU recipe)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the timed tokens/s")
    parser.add_argument("--output-dir", default=None, help="default: <cache>/runs/launch-<method>-<model>-<N>p-<time>")
    parser.add_argument("--save", action="store_true", help="write the adapters (or model) to OUTPUT_DIR/final")
    parser.add_argument("--no-checkpoint", action="store_true",
                        help="no checkpoint folder (weights and optimiser states) at the end: measurements")
    parser.add_argument("--record", default=None, help="append this run's record to a JSON file (rank 0 writes)")
    parser.add_argument("--note", default="", help="a sentence kept in the record")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run one process's share of a launched training run; return its record."""
    from dataclasses import replace

    from course_lib import data
    from course_lib.train.trainer import cpu_threads

    args = parse_args(argv)
    if local_device().type == "cuda":
        torch.cuda.set_device(local_device())  # "cuda" alone now means this process's GPU
    if args.method == "qlora":
        raise TrainSetupError(
            "--method qlora is not launched on several processes by this kit: train_sft trains 'lora' or 'full', "
            "and 4-bit weights under FSDP need bnb_4bit_quant_storage=bfloat16 so that the shards are floats. Use "
            "--method lora (bf16 base) with DDP or FSDP, or course_lib.qlora on one GPU (notebook 05).")
    preset, _ = choose_preset(args.preset)
    if args.dtype:
        preset = replace(preset, dtype=args.dtype)
    if args.checkpointing:
        preset = replace(preset, gradient_checkpointing=True)
    model, tokenizer = load_for_launch(args.model, args.shape)
    name = (args.shape or Path(args.model or model.name_or_path).name).replace("/", "-")
    output_dir = Path(args.output_dir) if args.output_dir else shared_output_dir(args.method, name)
    rows = data.load_split("train")
    rows = rows[: args.rows] if args.rows else rows
    threads = None
    if preset.needs == "cpu":  # the cores shared out between the processes, never more threads than cores
        threads = max(1, (cpu_threads(None)[0]) // world_size())
    clock = StepClock(checkpoints=not args.no_checkpoint)
    try:
        result = train_sft(model, rows, None, method=args.method, preset=preset, steps=args.steps, lr=args.lr,
                           output_dir=output_dir, tokenizer=tokenizer, replay=data.load_split("replay") if args.replay
                           else (), reply_first=True, seed=args.seed, progress=is_main_process(), threads=threads,
                           eval_steps=10**6, save_steps=10**6, callbacks=[clock.callback], in_place=True,
                           save_to=output_dir / "final" if args.save else None)
    except torch.OutOfMemoryError as err:  # one process: keep the fact (a model too large for one GPU) on record
        if args.record and world_size() == 1:
            append_record(args.record, {"model": args.model or f"random-{args.shape}", "method": args.method,
                                        "preset": asdict(preset), "world_size": 1, "error": "out of memory",
                                        "message": str(err)[:300], "peak_gib_per_process": [peak_memory_gib()],
                                        "environment": _environment(), "command": launch_command()})
        raise
    record = make_record(args, result, clock, args.warmup)
    if is_main_process():
        losses = [h["loss"] for h in record["loss"]]
        print(f"{record['world_size']} process(es) x {record['per_process_batch']} examples = effective batch "
              f"{record['effective_batch']}; {record['tokens_per_s']} real tokens/s after step {args.warmup}; "
              f"peak GiB per process {record['peak_gib_per_process']}; loss {losses[0]:.4f} -> {losses[-1]:.4f}")
        if args.record:
            append_record(args.record, record)
            print(f"record appended to {args.record}")
    return record


def compare_processes(folder: str | Path, processes: int = 2, steps: int = 3, rows: int = 16) -> list[dict]:
    """Train the profile's model twice on the CPU, fp32, the ``cpu`` preset (4 examples a step): once as one process,
    once as ``processes`` processes started by ``torchrun`` (gloo), each run in a subprocess. Returns their two
    records: the same examples each step, so the losses should agree to float rounding."""
    record = Path(folder) / "compare.json"
    record.unlink(missing_ok=True)
    env = {key: value for key, value in os.environ.items()
           if key not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    run = ["-m", "course_lib.train.launch", "--preset", "cpu", "--dtype", "fp32", "--steps", str(steps), "--rows",
           str(rows), "--warmup", "1", "--save", "--no-checkpoint", "--record", str(record)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    for n, prefix in ((1, [sys.executable]), (processes, torchrun)):  # --standalone: a free port, not 29500
        done = subprocess.run([*prefix, *run, "--output-dir", str(Path(folder) / f"{n}p")], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        if done.returncode:
            raise TrainSetupError(f"the {n}-process run failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(record.read_text())["launch_records"]


MEASURED_SHAPES = ("135m", "1b")  # data-parallel scaling; FSDP: an 8B full fine-tune (fp32 Adam: 16 bytes/param)


def measurement_commands(gpus: int, record: str, steps: int = 30, shapes: tuple[str, ...] = MEASURED_SHAPES,
                         python: str = "python") -> list[list[str]]:
    """The commands of the multi-GPU measurement (issue 14), each appending its record to ``record``: every shape's
    LoRA run on 1 GPU and on ``gpus`` GPUs (``accelerate launch``, DDP, the h100 preset: the same effective batch,
    so the loss curves compare), then an 8B full fine-tune (fp32 weights, gradients and Adam states: 110 GiB
    before activations) on 1 GPU, expected to run out of memory and recorded so, and sharded with FSDP."""
    if gpus < 2:
        raise TrainSetupError(f"gpus={gpus}: the measurement compares 1 GPU with several, so it needs 2 or more.")
    common = ["-m", "course_lib.train.launch", "--preset", "h100", "--replay", "--steps", str(steps),
              "--no-checkpoint", "--record", record]

    def accelerate(config: str | None, processes: int, *rest: str) -> list[str]:
        chosen = ["--config_file", str(CONFIGS / config)] if config else []  # 1 process: no wrapper at all
        return [python, "-m", "accelerate.commands.launch", *chosen, "--num_processes", str(processes), *common,
                *rest]

    commands = []
    for shape in shapes:
        commands += [accelerate(None, 1, "--shape", shape, "--method", "lora"),
                     accelerate("ddp.yaml", gpus, "--shape", shape, "--method", "lora")]
    commands += [accelerate(None, 1, "--shape", "8b", "--method", "full"),
                 accelerate("fsdp.yaml", gpus, "--shape", "8b", "--method", "full")]
    return commands


def run_measurement(commands: list[list[str]]) -> list[int]:
    """Run the commands one after another (a failed run, e.g. out of memory, does not stop the others)."""
    codes = []
    for command in commands:
        print("$", shlex.join(command), flush=True)
        codes.append(subprocess.run(command, cwd=ROOT).returncode)
    return codes


def scaling_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per multi-process record that has a 1-process record of the same model, method and effective
    batch: tokens/s on 1 and N processes, scaling efficiency (N-process tokens/s over N x 1-process tokens/s),
    peak memory per process, and the largest gap between the two loss curves at the steps both logged."""
    rows, records = [], [r for r in records if "error" not in r]  # runs that ran out of memory have no speed
    for many in (r for r in records if r["world_size"] > 1):
        key = (many["model"], many["method"], many["effective_batch"])
        one = next((r for r in reversed(records) if r["world_size"] == 1
                    and (r["model"], r["method"], r["effective_batch"]) == key), None)
        if one is None or not one["tokens_per_s"] or not many["tokens_per_s"]:
            continue
        a, b = ({p["step"]: p["loss"] for p in r["loss"]} for r in (one, many))
        common = sorted(set(a) & set(b))
        rows.append({"model": many["model"], "method": many["method"], "processes": many["world_size"],
                     "distributed": many["distributed"], "tokens_per_s_1": one["tokens_per_s"],
                     "tokens_per_s_n": many["tokens_per_s"],
                     "efficiency": round(many["tokens_per_s"] / (many["world_size"] * one["tokens_per_s"]), 3),
                     "peak_gib_1": one["peak_gib_per_process"], "peak_gib_n": many["peak_gib_per_process"],
                     "max_loss_gap": round(max((abs(a[s] - b[s]) for s in common), default=float("nan")), 5),
                     "steps_compared": len(common)})
    return rows


RESULTS = ROOT / "benchmarks" / "results" / "gpu_multi.json"


def recorded_launches(path: str | Path = RESULTS) -> list[dict[str, Any]]:
    """The records in a results file that ``--record`` appended to ([] when the file does not exist yet)."""
    path = Path(path)
    return json.loads(path.read_text()).get("launch_records", []) if path.exists() else []


def summary_lines(records: list[dict[str, Any]]) -> list[str]:
    """What the records show, one line each: every scaling pair (``scaling_table``), then every sharded (FSDP) run
    and every run that ran out of memory, with the peak memory of each process."""
    lines = [f"{r['model']} {r['method']}: {r['tokens_per_s_1']:,} tokens/s on 1 process, {r['tokens_per_s_n']:,} on "
             f"{r['processes']} ({r['distributed']}): scaling efficiency {r['efficiency']:.0%}; loss curves at "
             f"{r['steps_compared']} steps differ by at most {r['max_loss_gap']:.4f}" for r in scaling_table(records)]
    for r in records:
        if "error" in r:
            lines.append(f"{r['model']} {r['method']} on {r['world_size']} process: {r['error']} "
                         f"(peak {r['peak_gib_per_process'][0]} GiB before it failed)")
        elif r.get("distributed") == "FSDP":
            speed = f"{r['tokens_per_s']:,} tokens/s" if r.get("tokens_per_s") else "no timed steps"
            lines.append(f"{r['model']} {r['method']} sharded (FSDP) over {r['world_size']} processes: {speed}, "
                         f"peak GiB per process {r['peak_gib_per_process']}")
    return lines


if __name__ == "__main__":
    main()
