"""Adapters on disk: save a LoRA adapter (its matrices and config only), put it back on a base model, and measure
how many bytes a saved model or adapter takes.
"""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedModel


def save_adapter(model, path: str | Path) -> Path:
    """Save a peft model's adapter (the LoRA matrices and their config only) to ``path``."""
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        raise TypeError("save_adapter needs a peft model (the result of method='lora'). A fully fine-tuned model "
                        "is saved whole: model.save_pretrained(path).")
    path = Path(path)
    model.save_pretrained(path)
    return path


def load_adapter(base: PreTrainedModel, path: str | Path):
    """Put the adapter saved at ``path`` on top of ``base`` (changes ``base``: pass a copy to keep it clean)."""
    from peft import PeftModel

    if not (Path(path) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{path} holds no adapter (no adapter_config.json). Save one with save_adapter().")
    # adapters in the base's dtype (peft would upcast them to fp32, and a bf16 base then meets fp32 adapters)
    return PeftModel.from_pretrained(base, str(path), autocast_adapter_dtype=False).to(base.dtype).eval()


def find_adapter(base_name_or_path: str, runs_dir: str | Path | None = None) -> Path | None:
    """The newest adapter saved under the course cache's ``runs/*/adapter`` (as notebook 04 saves them) that was
    trained on ``base_name_or_path`` (its ``adapter_config.json`` names the base), or ``None``: an adapter only fits
    the model it was trained on, so one from the other profile's model is never returned."""
    import json

    from course_lib.paths import cache_dir

    root = Path(runs_dir) if runs_dir is not None else cache_dir() / "runs"
    found = []
    for config in root.glob("*/adapter/adapter_config.json"):
        try:
            base = json.loads(config.read_text()).get("base_model_name_or_path")
        except (OSError, ValueError):
            continue
        if base == str(base_name_or_path):
            found.append(config.parent)
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def size_on_disk(path: str | Path) -> int:
    """Bytes taken by a file or by every file under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human_size(n_bytes: float) -> str:
    """``1536000`` -> ``'1.5 MB'``."""
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.1f} {unit}" if unit != "B" else f"{int(n_bytes)} B"
        n_bytes /= 1000
    return f"{n_bytes:.1f} GB"
