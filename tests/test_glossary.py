"""The glossary defines the terms the notebooks use, and every term it defines is used in a notebook."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Terms the notebooks rely on; each must be defined in glossary.md. Add to this list when a lesson introduces one.
REQUIRED = [
    "Fine-tuning", "Profile", "Parameter", "dtype", "fp32", "bf16", "fp16", "Loss scaling", "Compute capability",
    "4-bit quantisation", "GGUF", "safetensors", "Token", "Tokenizer", "Chat template", "Padding token",
    "Embedding", "Attention", "Grouped-query attention", "MLP", "LoRA", "QLoRA",
    # 01
    "RAG", "Zero-shot", "Few-shot", "Baseline", "Decision note", "Held-out", "Greedy decoding", "System prompt",
    "JSON validity", "Schema-valid", "Field accuracy", "Regression set", "Forgetting", "Memorisation", "Canary",
    # 02
    "Chat format", "JSONL", "JSON schema", "Prompt-completion", "Quality report", "PII", "Redaction", "Presidio",
    "Luhn check", "NER", "Precision", "Recall", "Exact duplicate", "Near duplicate", "Shingle",
    "Jaccard similarity", "MinHash", "LSH", "Family", "Leak", "Union-find", "N-gram", "Contamination",
    "Causal language model", "Loss", "Assistant-only labels", "End-of-turn token",
    # 03
    "Rank", "Scaling", "Merging", "Dropout", "Target modules", "Gradient", "Optimizer states",
    "Mixed precision", "Activations", "Labels", "Logits",
    # 04
    "trl", "SFTTrainer", "peft", "Adapter", "Held-out loss", "Full fine-tuning", "Preset", "Learning rate",
    "Warmup", "Gradient accumulation", "Gradient clipping", "Checkpoint", "Batch", "Effective batch size",
    "Gradient checkpointing", "SFT", "Short training prompt", "Base model", "Padding-free", "Overfitting", "Step",
    "Replay",
    # 05
    "NF4", "Double quantisation", "Variable-length attention", "Chunked cross-entropy", "MFU",
    "World size", "DDP", "FSDP", "Scaling efficiency", "Master weights", "Offloading",
    # 06
    "Perplexity", "ROUGE-L", "Exact match", "Escalation recall", "Prompt injection", "Log-likelihood", "Break-even",
    "Behaviour drift", "Planted positive", "Verbatim regurgitation", "LLM-as-judge", "Rubric", "Position bias",
    "Length bias", "Cohen's kappa",
    # 07
    "Preference pair", "DPO", "Reference model", "Implicit reward", "Reward margin", "Preference accuracy", "Beta",
    "RLHF", "Reward model", "PPO", "KL penalty",
    # 08 (the local fine-tuning service)
    "OpenAI-compatible API", "Fine-tuning job", "API key", "Provenance",
    # 08 (merge and export)
    "Q8_0", "Modelfile", "Ollama",
]


def _defined() -> dict[str, str]:
    text = (ROOT / "glossary.md").read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"^\*\*(.+?)\*\*: (.+?)(?=\n\n|\Z)", text, re.M | re.S)}


def _notebook_text() -> str:
    parts = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            parts.append("".join(cell["source"]))
    return "\n".join(parts).lower()


def _used(term: str, text: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(term.lower()), text) is not None


def test_glossary_parses_and_has_no_duplicates():
    text = (ROOT / "glossary.md").read_text(encoding="utf-8")
    terms = re.findall(r"^\*\*(.+?)\*\*:", text, re.M)
    assert len(terms) == len(set(t.lower() for t in terms)), "a term is defined twice"
    assert all(len(d.split()) >= 5 for d in _defined().values()), "every definition is a sentence, not a word"


def test_required_terms_are_defined():
    defined = {t.lower() for t in _defined()}
    missing = [t for t in REQUIRED if t.lower() not in defined]
    assert not missing, f"glossary.md lacks definitions for {missing}"


def test_every_defined_term_is_used_in_a_notebook():
    text = _notebook_text()
    unused = [t for t in _defined() if not _used(t, text)]
    assert not unused, f"glossary.md defines terms no notebook uses: {unused}"


def test_required_terms_are_really_used():
    text = _notebook_text()
    stale = [t for t in REQUIRED if not _used(t, text)]
    assert not stale, f"REQUIRED lists terms no notebook uses any more: {stale}"
