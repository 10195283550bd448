"""course_lib.train.launch: the recipe started by torchrun / accelerate launch (CPU: gloo), the batch split, the
records a scaling measurement appends, the measurement's commands and the accelerate config files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from course_lib import train
from course_lib.train import launch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_two_processes_train_like_one_on_the_same_effective_batch(tmp_path):
    """1 process against torchrun's 2 (gloo on the CPU), fp32: each of the 2 takes 2 of the 4 examples a step, the
    gradients are averaged, so the logged losses agree to float rounding and the same tokens are seen."""
    one, two = launch.compare_processes(tmp_path, processes=2, steps=3, rows=16)  # rank 0 alone writes: 2 records
    assert (one["world_size"], one["per_process_batch"], one["effective_batch"]) == (1, 4, 4)
    assert (two["world_size"], two["per_process_batch"], two["effective_batch"]) == (2, 2, 4)
    assert (one["distributed"], two["distributed"]) == ("NO", "MULTI_CPU")
    assert [p["step"] for p in one["loss"]] == [p["step"] for p in two["loss"]] == [1, 2, 3]
    for a, b in zip(one["loss"], two["loss"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)  # measured: equal to 1e-7 (reduction order)
    assert one["real_tokens"] == two["real_tokens"] > 0  # trl's token count is summed over the processes
    assert len(two["peak_gib_per_process"]) == 2 and len(one["peak_gib_per_process"]) == 1
    assert two["parameter_elements_per_process"] == [two["total_params"]] * 2  # DDP: a whole copy each
    assert "torch.distributed.run --standalone --nproc_per_node 2 -m course_lib.train.launch" in two["command"]
    assert "-m course_lib.train.launch --preset cpu" in one["command"]
    for field in ("tokens_per_s", "seconds", "environment", "preset", "trainable_params", "steps"):
        assert field in one and field in two
    assert two["environment"]["torch"] and two["preset"]["batch_size"] == 2
    saved = sorted(p.name for p in (tmp_path / "2p" / "final").iterdir())
    assert "adapter_config.json" in saved and "adapter_model.safetensors" in saved
    assert not list((tmp_path / "2p").glob("checkpoint-*"))  # --no-checkpoint: the final adapters only
    rows = launch.scaling_table([one, two])
    assert len(rows) == 1 and rows[0]["processes"] == 2 and rows[0]["steps_compared"] == 3
    assert rows[0]["max_loss_gap"] < 1e-4


def test_batch_split_between_processes():
    preset = train.PRESETS["h100"]
    assert train.per_process_preset(preset, 1) is preset
    assert train.per_process_preset(preset, 2).batch_size == 32
    assert train.per_process_preset(preset, 8).batch_size == 8
    assert train.per_process_preset(replace(preset, grad_accum=2), 4).grad_accum == 2


def test_batch_that_does_not_split_is_refused_with_the_numbers():
    with pytest.raises(train.TrainSetupError, match=r"batch_size 64, which 3 processes cannot split evenly.*"
                                                    r"effective batch stays 64.*divides 64"):
        train.per_process_preset(train.PRESETS["h100"], 3)


@pytest.mark.parametrize("rank", ["0", "1"])
def test_several_processes_need_one_output_dir_and_rank_zero_alone_prints(tiny_model, monkeypatch, capsys, rank):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    assert train.world_size() == 2 and train.is_main_process() == (rank == "0")
    with pytest.raises(train.TrainSetupError, match="2 processes would each pick their own timestamped output_dir"):
        train.train_sft(tiny_model[0], [], tokenizer=tiny_model[1], preset=train.PRESETS["cpu"], steps=1,
                        progress=False, threads=1)
    printed = capsys.readouterr().out
    if rank == "0":
        assert "2 processes, data-parallel: 2 examples each a forward pass, so an optimiser step still sees 4" in printed
    else:
        assert printed == ""


def test_qlora_is_refused_with_what_to_do_instead():
    with pytest.raises(train.TrainSetupError, match="bnb_4bit_quant_storage=bfloat16.*--method lora"):
        launch.main(["--method", "qlora"])


def test_append_record_keeps_the_file_and_refuses_a_list(tmp_path):
    path = tmp_path / "gpu_recipes.json"
    path.write_text(json.dumps({"runs": {"a": 1}}))
    launch.append_record(path, {"world_size": 1})
    content = launch.append_record(path, {"world_size": 2})
    assert content == {"runs": {"a": 1}, "launch_records": [{"world_size": 1}, {"world_size": 2}]}
    assert json.loads(path.read_text()) == content
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(train.TrainSetupError, match="holds a JSON list, not an object"):
        launch.append_record(listed, {})


def _record(world: int, tps: float, losses: list[float], model: str = "random-1b", batch: int = 64) -> dict:
    return {"model": model, "method": "lora", "effective_batch": batch, "world_size": world, "tokens_per_s": tps,
            "distributed": "NO" if world == 1 else "MULTI_GPU", "peak_gib_per_process": [10.0] * world,
            "loss": [{"step": i + 1, "loss": v} for i, v in enumerate(losses)]}


def test_scaling_table_pairs_runs_of_the_same_effective_batch():
    records = [_record(1, 1000, [2.0, 1.5]), _record(2, 1800, [2.0, 1.25]), _record(2, 900, [1.0], batch=32),
               _record(2, 500, [1.0], model="random-135m")]
    (row,) = launch.scaling_table(records)  # the batch-32 and 135m runs have no 1-process partner
    assert row["efficiency"] == 0.9 and row["max_loss_gap"] == 0.25 and row["steps_compared"] == 2
    assert (row["tokens_per_s_1"], row["tokens_per_s_n"], row["processes"]) == (1000, 1800, 2)


def test_measurement_commands():
    commands = launch.measurement_commands(2, "out.json", steps=10, python="py")
    assert len(commands) == 6
    assert commands[0] == ["py", "-m", "accelerate.commands.launch", "--num_processes", "1", "-m",
                           "course_lib.train.launch", "--preset", "h100", "--replay", "--steps", "10",
                           "--no-checkpoint", "--record", "out.json", "--shape", "135m", "--method", "lora"]
    assert commands[1][3:7] == ["--config_file", str(ROOT / "configs/accelerate/ddp.yaml"), "--num_processes", "2"]
    assert commands[-1][-4:] == ["--shape", "8b", "--method", "full"] and "fsdp.yaml" in commands[-1][4]
    assert commands[-2][3:5] == ["--num_processes", "1"] and commands[-2][-3] == "8b"
    with pytest.raises(train.TrainSetupError, match="needs 2 or more"):
        launch.measurement_commands(1, "out.json")


def test_shapes():
    assert launch.shape_config("8b").num_hidden_layers == 32 and launch.shape_config("1b").hidden_size == 2048
    assert launch.shape_config("tiny").hidden_size == 64
    with pytest.raises(train.TrainSetupError, match="Unknown shape '70b'"):
        launch.shape_config("70b")


def test_accelerate_configs_load_and_wrap_the_decoder_layer(tiny_model):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    fsdp = load_config_from_file(str(ROOT / "configs/accelerate/fsdp.yaml"))
    assert fsdp.distributed_type == DistributedType.FSDP and fsdp.mixed_precision == "no"
    assert fsdp.fsdp_config["fsdp_version"] == 2 and fsdp.fsdp_config["fsdp_reshard_after_forward"] is True
    assert fsdp.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    layer = fsdp.fsdp_config["fsdp_transformer_layer_cls_to_wrap"]
    assert layer == type(tiny_model[0].model.layers[0]).__name__ == "LlamaDecoderLayer"
    ddp = load_config_from_file(str(ROOT / "configs/accelerate/ddp.yaml"))
    assert ddp.distributed_type == DistributedType.MULTI_GPU and ddp.mixed_precision == "no"


def test_summary_lines_of_recorded_runs(tmp_path):
    fsdp = {**_record(2, 900, [2.0], model="random-8b"), "method": "full", "distributed": "FSDP",
            "peak_gib_per_process": [70.5, 70.1]}
    oom = {"model": "random-8b", "method": "full", "world_size": 1, "error": "out of memory",
           "peak_gib_per_process": [78.9]}
    lines = launch.summary_lines([_record(1, 1000, [2.0, 1.5]), _record(2, 1800, [2.0, 1.25]), oom, fsdp])
    assert lines == [
        "random-1b lora: 1,000 tokens/s on 1 process, 1,800 on 2 (MULTI_GPU): scaling efficiency 90%; loss curves at "
        "2 steps differ by at most 0.2500",
        "random-8b full on 1 process: out of memory (peak 78.9 GiB before it failed)",
        "random-8b full sharded (FSDP) over 2 processes: 900 tokens/s, peak GiB per process [70.5, 70.1]"]
    assert launch.recorded_launches(tmp_path / "absent.json") == []
    launch.append_record(tmp_path / "r.json", oom)
    assert launch.recorded_launches(tmp_path / "r.json") == [oom]


def test_course_multi_gpu_dry_run_prints_the_commands(capsys, tmp_path):
    from course_lib import cli

    assert cli.main(["multi-gpu", "--gpus", "2", "--dry-run", "--record", str(tmp_path / "m.json")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 6 and all(f"--record {tmp_path / 'm.json'}" in line for line in printed)
    assert "--config_file" in printed[-1] and "fsdp.yaml --num_processes 2" in printed[-1]
    assert cli.main(["multi-gpu", "--gpus", "1", "--dry-run"]) == 2
