"""course_lib.train: trl SFT recipes on the tiny model (a few steps each, temporary folders)."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
import torch
from transformers import TrainerCallback

from course_lib import data, greenleaf, train

# Small for speed: 2 examples per step, a held-out loss only when asked.
TINY = replace(train.PRESETS["cpu"], batch_size=2)


def _rows(n: int) -> list[dict]:
    cats = greenleaf.CATEGORIES
    rows = []
    for i in range(n):
        answer = greenleaf.format_target(cats[i % len(cats)], greenleaf.PRIORITIES[i % 4], i % 2 == 0,
                                         f"Thanks for telling us about order {i}. We are on it. {greenleaf.SIGN_OFF}")
        ticket = f"Ticket {i}: my {'fern' if i % 2 else 'order'} has a problem, please help."
        rows.append({"id": f"t{i}", "family": f"f{i}",
                     "messages": greenleaf.messages_for(ticket) + [{"role": "assistant", "content": answer}]})
    return rows


def _train(tiny_model, tmp_path, **kwargs):
    model, tok = tiny_model
    args = dict(tokenizer=tok, preset=TINY, steps=2, output_dir=tmp_path / "run", progress=False, eval_steps=100)
    args.update(kwargs)
    return train.train_sft(model, _rows(8), _rows(2), **args)


def test_lora_run_finishes_with_finite_loss_and_leaves_base_untouched(tiny_model, tmp_path):
    before = {k: v.clone() for k, v in tiny_model[0].state_dict().items()}
    result = _train(tiny_model, tmp_path, method="lora", lora_r=4, lora_alpha=8)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)
    assert 0 < result.trainable_params < result.total_params / 5
    assert result.tokens_per_second > 0 and result.answer_tokens > 0
    assert all(torch.equal(v, tiny_model[0].state_dict()[k]) for k, v in before.items())  # trained a copy
    assert train.latest_checkpoint(result.output_dir).name == "checkpoint-2"
    adapter = train.save_adapter(result.model, tmp_path / "adapter")
    assert 0 < train.size_on_disk(adapter) < 5e6
    import copy

    reloaded = train.load_adapter(copy.deepcopy(tiny_model[0]).to(result.model.dtype), adapter)
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(reloaded(ids).logits, result.model(ids).logits, atol=1e-5)


def test_full_run_trains_every_weight(tiny_model, tmp_path):
    result = _train(tiny_model, tmp_path, method="full", steps=1, save_steps=1)
    assert result.trainable_params == result.total_params
    assert all(math.isfinite(h["loss"]) for h in result.history if "loss" in h)
    with pytest.raises(TypeError, match="peft model"):
        train.save_adapter(result.model, tmp_path / "nope")


def _collated_batch(tiny_model, tmp_path, rows, preset=TINY):
    model, tok = tiny_model
    import copy

    config = train.sft_config(preset, tmp_path / "masking", steps=1, lr=1e-4, progress=False)
    trainer = train.build_trainer(copy.deepcopy(model), tok, rows, None, config, system_prompt=None)
    return next(iter(trainer.get_train_dataloader())), trainer


@pytest.mark.parametrize("padding_free", [True, False])
def test_loss_is_on_the_answer_only_in_the_real_collated_batch(tiny_model, tmp_path, padding_free):
    tok = tiny_model[1]
    rows = _rows(2)
    batch, _ = _collated_batch(tiny_model, tmp_path, rows, replace(TINY, padding_free=padding_free))
    if padding_free:  # one long row; cu_seq_lens_q marks where each example starts
        bounds = batch["cu_seq_lens_q"].tolist()
        pieces = [(batch["input_ids"][0, a:b], batch["labels"][0, a:b]) for a, b in zip(bounds, bounds[1:])]
    else:
        pieces = list(zip(batch["input_ids"], batch["labels"]))
    answers = {r["messages"][-1]["content"] + tok.eos_token for r in rows}
    seen = set()
    for ids, labels in pieces:
        kept = labels != -100
        assert torch.equal(ids[kept], labels[kept])  # labels are the tokens themselves, not shifted
        seen.add(tok.decode(ids[kept]))
        assert kept.sum() < len(ids) / 2  # the prompt (system + user) is masked
    assert seen == answers  # exactly the assistant JSON + <|im_end|>: no prompt, no template newline after it


def test_labels_agree_with_course_lib_data(tiny_model, tmp_path):
    tok = tiny_model[1]
    rows = _rows(2)
    batch, trainer = _collated_batch(tiny_model, tmp_path, rows, replace(TINY, padding_free=False))
    ours = trainer.train_dataset
    for i, row in enumerate(rows):
        ref = data.tokenize_sft(row["messages"], tok, 512)
        ref_answer = [t for t in ref["labels"] if t != -100]
        j = [k for k in range(len(ours)) if tok.decode([t for t in ours[k]["labels"] if t != -100]).startswith(
            row["messages"][-1]["content"])][0]
        assert [t for t in ours[j]["labels"] if t != -100] == list(ref_answer)


class _StopAt(TrainerCallback):
    """Interrupts training after step ``k``, as a crash or a closed laptop would."""

    def __init__(self, k: int) -> None:
        self.k = k

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.k:
            control.should_training_stop = True


class _CountSteps(TrainerCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_resume_continues_from_the_latest_checkpoint(tiny_model, tmp_path):
    first = _train(tiny_model, tmp_path, steps=4, save_steps=2, callbacks=[_StopAt(2)])
    assert first.history[-1]["step"] == 2
    assert train.latest_checkpoint(first.output_dir).name == "checkpoint-2"
    with pytest.raises(train.TrainSetupError, match="resume=True"):  # never mixes two runs in one folder
        _train(tiny_model, tmp_path, steps=4, save_steps=2)
    counter = _CountSteps()
    second = _train(tiny_model, tmp_path, steps=4, save_steps=2, resume=True, callbacks=[counter])
    assert counter.steps == [3, 4]  # continued at step 3, not restarted at 1
    assert second.history[-1]["step"] == 4
    train_steps = [h["step"] for h in second.history if "loss" in h]
    assert train_steps[0] == 1  # the trainer state (log history) came back with the checkpoint
    assert train.latest_checkpoint(second.output_dir).name == "checkpoint-4"


def test_resume_without_a_checkpoint_says_so(tiny_model, tmp_path):
    with pytest.raises(train.TrainSetupError, match="no checkpoint"):
        _train(tiny_model, tmp_path, resume=True)


GPU = "FakeGPU 9000"


@pytest.fixture
def hardware(monkeypatch):
    """``hardware(cuda, gpu_bf16, cpu_bf16)`` makes ``choose_preset`` see that machine, whatever this one is."""

    def fake(cuda: bool, gpu_bf16: bool, cpu_bf16: bool) -> None:
        def device_name(*args, **kwargs):
            assert cuda, "choose_preset asked for a GPU name on a machine without CUDA"
            return GPU

        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda and gpu_bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", device_name)
        monkeypatch.setattr(train.models, "cpu_has_native_bf16", lambda: cpu_bf16)

    return fake


CUSTOM = replace(train.PRESETS["cpu"], batch_size=2)  # a preset built by hand is used as given (no dtype switch)


@pytest.mark.parametrize("cuda, gpu_bf16, cpu_bf16, name, expected, why", [
    # preset=None: picked from the hardware
    (True, True, False, None, ("h100", "bf16"), f"{GPU} supports bf16"),
    (True, True, True, None, ("h100", "bf16"), f"{GPU} supports bf16"),
    (True, False, True, None, ("t4", "fp16"), f"{GPU} has no bf16, so fp16"),
    (False, False, True, None, ("cpu", "bf16"), "no CUDA GPU; this CPU has bf16 instructions"),
    (False, False, False, None, ("cpu", "fp32"), "no CUDA GPU; this CPU has no bf16 instructions, so fp32"),
    # by name, where the hardware can run it
    (True, True, False, "h100", ("h100", "bf16"), "asked for by name"),
    (True, True, False, "t4", ("t4", "fp16"), "asked for by name"),
    (True, False, False, "t4", ("t4", "fp16"), "asked for by name"),
    (True, True, True, "cpu", ("cpu", "bf16"), "asked for by name; this CPU has bf16 instructions"),
    (True, True, False, "cpu", ("cpu", "fp32"), "asked for by name; this CPU has no bf16 instructions"),
    (False, False, True, "cpu", ("cpu", "bf16"), "asked for by name; this CPU has bf16 instructions"),
    (False, False, False, "cpu", ("cpu", "fp32"), "asked for by name; this CPU has no bf16 instructions"),
    # a Preset object
    (False, False, True, CUSTOM, ("cpu", "fp32"), "a preset you built yourself"),
    (False, False, True, replace(CUSTOM, dtype="bf16"), ("cpu", "bf16"), "a preset you built yourself"),
    (True, True, False, replace(train.PRESETS["h100"], batch_size=4), ("h100", "bf16"), "a preset you built"),
])
def test_choose_preset_on_each_kind_of_machine(hardware, cuda, gpu_bf16, cpu_bf16, name, expected, why):
    hardware(cuda, gpu_bf16, cpu_bf16)
    preset, reason = train.choose_preset(name)
    assert (preset.name, preset.dtype) == expected
    assert reason.startswith(why)
    base = name if isinstance(name, train.Preset) else train.PRESETS[expected[0]]
    assert preset == replace(base, dtype=expected[1])  # only the dtype may change, nothing else


@pytest.mark.parametrize("cuda, gpu_bf16, cpu_bf16, name, error", [
    (False, False, True, "h100", "no CUDA GPU.*preset='cpu'"),
    (False, False, True, "t4", "no CUDA GPU.*preset='cpu'"),
    (False, False, False, replace(train.PRESETS["h100"], batch_size=4), "no CUDA GPU.*preset='cpu'"),
    (True, False, True, "h100", f"bf16, which {GPU} does not support.*preset='t4'"),
    (False, False, False, replace(train.PRESETS["cpu"], dtype="bf16"), "asks for bf16.*dtype='fp32'"),
    (True, True, True, "tpu", "Unknown preset 'tpu'"),
    (False, False, False, "tpu", "Unknown preset 'tpu'"),
])
def test_choose_preset_refuses_what_the_machine_cannot_run(hardware, cuda, gpu_bf16, cpu_bf16, name, error):
    hardware(cuda, gpu_bf16, cpu_bf16)
    with pytest.raises(train.TrainSetupError, match=error):
        train.choose_preset(name)


def test_rows_without_an_assistant_turn_are_refused(tiny_model, tmp_path):
    rows = _rows(3)
    rows[1] = {"id": "no-answer", "messages": rows[1]["messages"][:2]}
    with pytest.raises(train.TrainSetupError, match=r"row 1 \(id 'no-answer'\) does not end with .*assistant"):
        train.train_sft(tiny_model[0], rows, None, tokenizer=tiny_model[1], preset=TINY, steps=1,
                        output_dir=tmp_path / "x", progress=False)
    with pytest.raises(train.TrainSetupError, match="No training rows"):
        train.prompt_completion_rows([])


def test_too_long_row_is_refused_by_name(tiny_model, tmp_path):
    rows = _rows(3)
    rows[2]["messages"][1]["content"] = "leaves " * 600
    with pytest.raises(train.TrainSetupError, match=r"row 2 \(id 't2'\) is \d+ tokens, longer than max_length=512"):
        train.train_sft(tiny_model[0], rows, None, tokenizer=tiny_model[1], preset=TINY, steps=1,
                        output_dir=tmp_path / "long", progress=False)


def test_unknown_method_is_refused(tiny_model, tmp_path):
    with pytest.raises(train.TrainSetupError, match="method='qlora'"):
        _train(tiny_model, tmp_path, method="qlora")


def test_plot_history_and_live_plot_headless():
    history = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 2, "eval_loss": 1.7}]
    fig = train.plot_history(history)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["train", "held-out"]
    live = train.LiveLossPlot()
    live.on_log(None, type("S", (), {"global_step": 3})(), None, logs={"loss": 1.0})  # no notebook: records only
    assert live.history == [{"loss": 1.0, "step": 3}]


def test_human_size():
    assert train.human_size(999) == "999 B"
    assert train.human_size(1_536_000) == "1.5 MB"


def test_replay_rows_keep_their_own_system_prompt():
    task = _rows(3)
    replay = [{"id": "g1", "messages": [{"role": "user", "content": "Explain rain."},
                                        {"role": "assistant", "content": "Water falls from clouds."}]}]
    mixed = train.training_rows(task, "short prompt", replay)
    assert [r["id"] for r in mixed] == ["t0", "t1", "t2", "g1"]
    assert all(r["messages"][0] == {"role": "system", "content": "short prompt"} for r in mixed[:3])
    assert mixed[3] == replay[0] and task[0]["messages"][0]["content"] == greenleaf.SYSTEM_PROMPT  # inputs untouched
    assert train.training_rows(task, None)[0]["messages"][0]["content"] == greenleaf.SYSTEM_PROMPT


KILLED_RUN = """
import os, signal, sys
import torch
from transformers import TrainerCallback
sys.path.insert(0, {tests!r})
from test_train import _rows, TINY
from course_lib import models, train

class Kill(TrainerCallback):  # the process dies mid-run, without saving anything more: like a crash
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 3:
            os.kill(os.getpid(), signal.SIGKILL)

model, tok = models.load_model("tiny", device="cpu", dtype=torch.float32, verbose=False)
train.train_sft(model, _rows(8), None, tokenizer=tok, preset=TINY, steps=4, save_steps=2,
                output_dir={out!r}, progress=False, callbacks=[Kill()], threads=1)
"""


def _adapter_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().clone() for k, v in model.state_dict().items() if "lora_" in k}


def test_a_killed_run_resumes_to_the_same_weights(tiny_model, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    args = dict(tokenizer=tiny_model[1], preset=TINY, steps=4, save_steps=2, progress=False, threads=1)
    straight = train.train_sft(tiny_model[0], _rows(8), None, output_dir=tmp_path / "straight", **args)
    out = tmp_path / "killed"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL: no clean shutdown
    assert train.latest_checkpoint(out).name == "checkpoint-2"
    resumed = train.train_sft(tiny_model[0], _rows(8), None, output_dir=out, resume=True, **args)
    assert resumed.history[-1]["step"] == 4 and train.latest_checkpoint(out).name == "checkpoint-4"
    want, got = _adapter_weights(straight.model), _adapter_weights(resumed.model)
    assert want.keys() == got.keys() and want
    for key in want:  # same data order, optimizer state and RNG after the resume: the same final adapter
        torch.testing.assert_close(got[key], want[key], atol=1e-6, rtol=1e-5)


def test_cpu_threads_leave_busy_cores_alone(monkeypatch):
    import psutil

    before = torch.get_num_threads()
    cores = psutil.cpu_count(logical=False) or 1
    try:
        monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 100.0)
        assert train.cpu_threads()[0] == 1  # every core busy: one thread, not a pile-up
        monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 0.0)
        threads, why = train.cpu_threads()
        assert threads == cores and torch.get_num_threads() == cores and "physical cores" in why
        assert train.cpu_threads(1) == (1, "asked for")
    finally:
        torch.set_num_threads(before)


def test_find_adapter_returns_the_newest_for_this_base_only(tmp_path):
    import json
    import os

    def save(run: str, base: str, mtime: int):
        folder = tmp_path / run / "adapter"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
        os.utime(folder, (mtime, mtime))
        return folder

    old = save("lora-1", "/cache/tiny-llama", 1_000)
    new = save("lora-2", "/cache/tiny-llama", 2_000)
    save("lora-3", "/cache/smollm2-135m-instruct", 3_000)
    (tmp_path / "lora-4" / "adapter").mkdir(parents=True)  # a folder without a config is skipped
    assert train.find_adapter("/cache/tiny-llama", tmp_path) == new != old
    assert train.find_adapter("/cache/other", tmp_path) is None
    assert train.find_adapter("/cache/tiny-llama", tmp_path / "missing") is None


def test_an_adam_step_on_a_bf16_weight_rounds_away_and_fp32_master_weights_keep_it():
    """Why full fine-tuning keeps fp32 master weights: AdamW's first step moves each weight by the learning rate;
    at 0.02, bf16's rounding step is 2^-13 (0.02 lies in [2^-6, 2^-5), 7 mantissa bits), so a 5e-5 step is lost."""
    assert torch.finfo(torch.bfloat16).eps * 2**-6 == 2**-13 > 2 * 5e-5
    kept = {}
    for dtype in (torch.bfloat16, torch.float32):
        weight = torch.nn.Parameter(torch.full((4,), 0.02, dtype=dtype))
        optimizer = torch.optim.AdamW([weight], lr=5e-5, weight_decay=0.0)
        weight.grad = torch.ones_like(weight)
        before = weight.detach().clone()
        optimizer.step()
        kept[dtype] = (weight.detach() - before).float()
    assert torch.equal(kept[torch.bfloat16], torch.zeros(4))  # the update rounded away: the weight never moves
    assert torch.allclose(kept[torch.float32], torch.full((4,), -5e-5), rtol=1e-3)


def test_storage_dtype_keeps_fp32_master_weights_for_full_fine_tuning_on_gpu_presets():
    for name in ("t4", "h100"):
        preset = train.PRESETS[name]
        for dtype in (torch.bfloat16, torch.float16):
            assert train.storage_dtype(preset, "full", dtype)[0] == torch.float32
            assert train.storage_dtype(preset, "lora", dtype)[0] == dtype  # adapters are fp32 already
    cpu = train.PRESETS["cpu"]
    assert train.storage_dtype(cpu, "lora", torch.bfloat16)[0] == torch.float32
    assert train.storage_dtype(cpu, "full", torch.float32) == (torch.float32, "already fp32")
    with pytest.raises(train.TrainSetupError, match="method='sgd'"):
        train.storage_dtype(cpu, "sgd", torch.float32)


def test_adapter_input_casts_off_changes_no_number_and_ends_with_the_context(tiny_model):
    """Without peft's cast of each adapter's input to fp32, a bf16-autocast step gives bit-identical loss and
    gradients (the matmuls ran in bf16 either way), so train_sft may drop the cast for its speed."""
    import copy

    from peft import get_peft_model

    model, _ = tiny_model
    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (2, 12))
    results = []
    for drop_cast in (False, True):
        torch.manual_seed(1)  # the same A (peft's init) and B in both runs
        peft_model = get_peft_model(copy.deepcopy(model), train.lora_config(r=4, lora_alpha=8))
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.data.normal_(0, 0.1)  # B = 0 would hide the adapters from the loss
        preset = replace(train.PRESETS["cpu"], dtype="bf16" if drop_cast else "fp32")  # fp32: the context is off
        with train.adapter_input_casts_off(peft_model, preset, "lora"):
            layers = [m for m in peft_model.modules() if hasattr(m, "lora_A")]
            assert len(layers) == 14 and all(getattr(m, "cast_input_dtype_enabled", True) != drop_cast
                                             for m in layers)  # 7 linear layers x 2 blocks
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = peft_model(input_ids=ids, labels=ids).loss
            loss.backward()
        assert all(getattr(m, "cast_input_dtype_enabled", True) for m in layers)  # back on after the context
        results.append((loss.detach(), {n: p.grad for n, p in peft_model.named_parameters() if p.requires_grad}))
    assert torch.equal(results[0][0], results[1][0])
    assert results[0][1].keys() == results[1][1].keys()
    assert all(torch.equal(results[0][1][n], results[1][1][n]) for n in results[0][1])


def test_gpu_presets_are_the_configurations_the_gpu_benchmark_measured():
    """The t4 and h100 presets are what benchmarks/gpu_greenleaf.py measured best within each GPU's memory, and
    the recorded runs show the gain over the presets as they were (same process, same rows)."""
    import json
    from dataclasses import asdict

    from course_lib.paths import REPO_ROOT

    results = REPO_ROOT / "benchmarks" / "results"
    h100 = json.loads((results / "gpu_greenleaf.json").read_text())["runs"]
    t4 = json.loads((results / "gpu_greenleaf_t4.json").read_text())["runs"]
    assert h100["1b-lora-packed-64"]["preset"] == asdict(train.PRESETS["h100"])
    assert h100["1b-lora-packed-64"]["attention"] == "course_varlen" and h100["1b-lora-packed-64"]["peak_gib"] < 20
    assert h100["1b-lora-packed-64"]["tokens_per_s"] > 5 * h100["1b-lora-h100-before"]["tokens_per_s"]
    assert t4["1b-lora-t4-packed-16"]["preset"] == asdict(train.PRESETS["t4"])
    assert t4["1b-lora-t4-packed-16"]["tokens_per_s"] > 3 * t4["1b-lora-t4-before"]["tokens_per_s"]
    before = t4["1b-lora-t4-before"]["preset"]
    assert before["batch_size"] * before["grad_accum"] == train.PRESETS["t4"].batch_size  # same examples a step


def test_masters_in_optimizer_only_for_full_bf16_on_one_gpu():
    h100, cpu = train.PRESETS["h100"], train.PRESETS["cpu"]
    assert train.masters_in_optimizer(h100, "full", torch.bfloat16, on_gpu=True, processes=1)
    assert not train.masters_in_optimizer(h100, "lora", torch.bfloat16, on_gpu=True, processes=1)  # adapters fp32
    assert not train.masters_in_optimizer(h100, "full", torch.float32, on_gpu=True, processes=1)  # fp32 already
    assert not train.masters_in_optimizer(h100, "full", torch.bfloat16, on_gpu=True, processes=2)  # FSDP shards later
    assert not train.masters_in_optimizer(train.PRESETS["t4"], "full", torch.float16, on_gpu=True, processes=1)
    assert not train.masters_in_optimizer(replace(cpu, dtype="bf16"), "full", torch.bfloat16, on_gpu=False,
                                          processes=1)  # the CPU recipe's recorded runs stay as they are


def test_master_weight_optimizer_uses_the_trainers_decay_groups_and_rates(tiny_model, tmp_path):
    model, tok = tiny_model
    config = train.sft_config(TINY, tmp_path, steps=1, lr=5e-5, progress=False)
    trainer = train.build_trainer(copy.deepcopy(model), tok, _rows(4), None, config, method="full", max_length=256)
    opt = train.master_weight_optimizer(trainer)
    decay = set(trainer.get_decay_parameter_names(trainer.model))
    named = dict(trainer.model.named_parameters())  # a tied weight appears once, under its first name
    with_decay, without = ({id(p) for p in g["params"]} for g in opt.param_groups)
    assert with_decay == {id(p) for n, p in named.items() if n in decay} and not (with_decay & without)
    assert with_decay | without == {id(p) for p in named.values() if p.requires_grad}
    assert len(without) == sum(1 for n in named if "norm" in n)  # no decay on the norms (the tiny model has no biases)
    assert [g["weight_decay"] for g in opt.param_groups] == [config.weight_decay, 0.0]
    assert all(g["lr"] == 5e-5 and g["betas"] == (config.adam_beta1, config.adam_beta2) for g in opt.param_groups)


def test_train_sft_keeps_a_bf16_model_in_bf16_with_masters_in_the_optimizer(tiny_model, tmp_path, monkeypatch):
    from course_lib.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "masters_in_optimizer", lambda *args: True)  # the GPU rule, here on a CPU
    seen = {}
    real_build = trainer_module.build_trainer

    def build(*args, **kwargs):
        seen["trainer"] = real_build(*args, **kwargs)
        return seen["trainer"]

    monkeypatch.setattr(trainer_module, "build_trainer", build)
    model = copy.deepcopy(tiny_model[0]).to(torch.bfloat16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = _train((model, tiny_model[1]), tmp_path, method="full", preset=replace(TINY, dtype="bf16"), lr=1e-3)
    optimizer = seen["trainer"].optimizer.optimizer  # inside accelerate's AcceleratedOptimizer
    assert isinstance(optimizer, train.MasterWeightAdamW)
    assert {p.dtype for p in result.model.parameters()} == {torch.bfloat16}  # no fp32 copy of the model
    masters = [s["master"] for s in optimizer.state.values() if "master" in s]
    assert masters and all(m.dtype == torch.float32 for m in masters)
    after = result.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(math.isfinite(r["loss"]) for r in result.history if "loss" in r)
