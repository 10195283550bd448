"""Shipping a tuned model (notebook 08): merge the LoRA adapter into the base weights, save the result as
safetensors with a provenance file, export it to GGUF (``gguf_export``) for llama.cpp and Ollama, load the GGUF back
with transformers, and check that every step kept the model's behaviour; then write an Ollama ``Modelfile``.

Tolerances, and why (max |logit difference| on the same inputs, logits of a few units to a few tens):

- merge, in fp32: ``W + B·A·scale`` computed once instead of at every forward pass; only fp32 rounding in a
  different order changes, which grows with the logits' size and the depth (measured: 1e-6 on the tiny model,
  6e-4 on SmolLM2-135M, whose logits reach tens). ``MERGE_ATOL = 1e-2`` changes no decision and still catches a
  wrong merge (a missing scale or a dropped layer moves logits by whole units).
- GGUF f16: every weight rounded to half precision (relative error ≤ 2**-11 ≈ 0.05%); over 30 layers the logits
  move by hundredths (SmolLM2-135M: 0.04 at most on 8 tickets, ``benchmarks/results/export.json``). Greedy text
  almost always stays identical; where two tokens are nearly tied, it can flip.
- GGUF q8_0: weights in 8-bit integers with one scale per block of 32, an error of up to ``max|w| / 254`` per
  weight: roughly ten times f16's per weight, and more at the largest logits (SmolLM2-135M: 2.4 at most, 99% of
  next tokens the same). Most greedy answers stay identical; some diverge after a near-tie, and then the rest of
  the answer differs too. So q8_0 is judged on the task metrics and on the share of identical answers, with an
  interval, not on logits alone.
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

import torch

from course_lib import __version__, models
from course_lib.paths import sha256_file  # noqa: F401 (re-exported)
from course_lib.gguf_export import DTYPES, ExportError, export_gguf, read_metadata  # noqa: F401  (re-exported)

MERGE_ATOL = 1e-2
PROVENANCE_FILE = "provenance.json"


@torch.no_grad()
def merge_adapter(model, atol: float = MERGE_ATOL, input_ids: torch.Tensor | None = None):
    """Merge a peft LoRA model's adapter into a COPY of its base weights (peft's ``merge_and_unload``); ``model``
    is left as it was. Checked: the merged model's logits equal the adapter model's within ``atol`` on
    ``input_ids`` (default: 2 rows of 32 token ids drawn with seed 0). Returns ``(merged_model, max_gap)``.

    The model must be in fp32: merging ``W + ΔW`` into bf16 weights rounds part of the update away (notebook 03
    measured it), so load the base with ``dtype=torch.float32`` for shipping."""
    if not hasattr(model, "merge_and_unload"):
        raise TypeError("merge_adapter needs a peft model with its adapter on top (train.load_adapter(base, path)); "
                        f"got {type(model).__name__}, which has nothing to merge.")
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:
        raise ValueError(f"This model is stored in {str(dtype).replace('torch.', '')}: merging W + ΔW in 16 bits "
                         "rounds part of the update away (notebook 03). Load the base in fp32 for shipping: "
                         "models.load_model(dtype=torch.float32), then train.load_adapter(base, adapter_path).")
    if input_ids is None:
        generator = torch.Generator().manual_seed(0)
        input_ids = torch.randint(0, model.config.vocab_size, (2, 32), generator=generator)
    input_ids = input_ids.to(model.device)
    model.eval()
    before = model(input_ids=input_ids).logits
    merged = copy.deepcopy(model).merge_and_unload().eval()
    gap = (merged(input_ids=input_ids).logits - before).abs().max().item()
    if not gap <= atol:
        raise RuntimeError(f"The merged model's logits differ from the adapter model's by {gap:.3g} (> {atol}): the "
                           "merge changed the model. Check that the adapter was loaded on the base it was trained on.")
    return merged, gap


def save_merged(model, tokenizer, folder: str | Path, adapter: str | Path | None = None,
                overwrite: bool = False) -> Path:
    """Save a merged model as safetensors + config + tokenizer in ``folder``, with ``provenance.json``: the base
    model, the adapter's folder and the sha256 of its weights, the sha256 of each weights file written, the course
    and library versions, and the time. Refuses to write into a non-empty folder unless ``overwrite=True``."""
    from importlib.metadata import version

    if hasattr(model, "peft_config"):
        raise TypeError("save_merged got a peft model: merge it first (merged, gap = ship.merge_adapter(model)). "
                        "To save the adapter alone, use train.save_adapter.")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} already holds files; pass overwrite=True to replace them, or another folder.")
    adapter_sha = None
    if adapter is not None:
        weights = Path(adapter) / "adapter_model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{adapter} has no adapter_model.safetensors: pass the folder train.save_adapter "
                                    "wrote (or None if the model was not made from a saved adapter).")
        adapter_sha = sha256_file(weights)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # safetensors by default
    tokenizer.save_pretrained(folder)
    provenance = {
        "base_model": str(model.config._name_or_path), "adapter": str(adapter) if adapter else None,
        "adapter_sha256": adapter_sha, "dtype": str(model.dtype).replace("torch.", ""),
        "weights_sha256": {p.name: sha256_file(p) for p in sorted(folder.glob("*.safetensors"))},
        "course_lib": __version__, **{pkg: version(pkg) for pkg in ("torch", "transformers", "peft")},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (folder / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    return folder


def read_provenance(folder: str | Path) -> dict:
    """The ``provenance.json`` that ``save_merged`` wrote in ``folder``."""
    path = Path(folder) / PROVENANCE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {PROVENANCE_FILE}: it was not written by ship.save_merged.")
    return json.loads(path.read_text())


def export(folder: str | Path, out_path: str | Path, dtype: str = "f16") -> dict:
    """``export_gguf`` of a ``save_merged`` folder, with its provenance (adapter sha256, course version) written
    into the file's ``general.description``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: save the merged model there first (ship.save_merged).")
    prov = read_provenance(folder) if (folder / PROVENANCE_FILE).is_file() else {}
    description = (f"course_lib {prov.get('course_lib', __version__)}: merged LoRA adapter "
                   f"sha256 {prov.get('adapter_sha256')} into {prov.get('base_model')}") if prov else None
    return export_gguf(folder, out_path, dtype, description=description)


def load_gguf(path: str | Path, dtype: torch.dtype = torch.float32, with_tokenizer: bool = True):
    """``(model, tokenizer)`` read back from a GGUF file by transformers (weights dequantized to ``dtype``).
    Rebuilding the tokenizer from the file's 49,152 tokens and merges takes longer than the weights of a small
    model: ``with_tokenizer=False`` skips it (tokenizer ``None``) when you already have the tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not path.is_file() or path.suffix != ".gguf":
        raise FileNotFoundError(f"{path} is not a .gguf file: export one first (ship.export(folder, path, 'f16')).")
    tokenizer = None
    if with_tokenizer:
        tokenizer = models._finish_tokenizer(AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name))
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype).eval()
    return model, tokenizer


@torch.no_grad()
def compare(model_a, model_b, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 64,
            stop_after_json: bool = False, texts_a: list[str] | None = None) -> dict:
    """Two models on the same chat prompts (conversations without the answer): logits at every prompt position
    (``max_abs_logit_diff``, ``top1_agreement``: the share of positions with the same most likely next token) and
    greedy answers (``models.generate``; ``identical``: per prompt, is the text the same). Also ``texts_a``,
    ``texts_b`` and ``positions`` (how many positions the logits cover). ``texts_a``: model_a's greedy answers
    from an earlier ``compare`` with the same settings, to skip generating them again."""
    if not prompts:
        raise ValueError("compare needs at least one prompt (a list of chat messages).")
    gap, same, positions = 0.0, 0, 0
    for messages in prompts:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        a = model_a(input_ids=ids.to(model_a.device)).logits.float().cpu()[0]
        b = model_b(input_ids=ids.to(model_b.device)).logits.float().cpu()[0]
        gap = max(gap, (a - b).abs().max().item())
        same += int((a.argmax(-1) == b.argmax(-1)).sum())
        positions += a.shape[0]
    if texts_a is None:
        texts_a = models.generate(model_a, tokenizer, prompts, max_new_tokens, stop_after_json=stop_after_json)
    texts_b = models.generate(model_b, tokenizer, prompts, max_new_tokens, stop_after_json=stop_after_json)
    return {"max_abs_logit_diff": gap, "top1_agreement": same / positions, "positions": positions,
            "identical": [x == y for x, y in zip(texts_a, texts_b)], "texts_a": texts_a, "texts_b": texts_b}


def format_comparison(results: dict[str, dict]) -> str:
    """One line per comparison: max |Δlogit|, top-1 agreement, identical greedy answers (k of n)."""
    lines = [f"{'':28} {'max |Δlogit|':>12} {'top-1 agree':>12} {'identical answers':>18}"]
    for name, r in results.items():
        k, n = sum(r["identical"]), len(r["identical"])
        lines.append(f"{name:28} {r['max_abs_logit_diff']:>12.4f} {r['top1_agreement']:>12.4f} {f'{k} of {n}':>18}")
    return "\n".join(lines)


def plot_sizes(sizes: dict[str, int], title: str = "The same model on disk"):
    """Horizontal bars: megabytes per artefact (adapter, merged safetensors, GGUF f16, GGUF q8_0)."""
    from course_lib.plots import new_figure
    from course_lib.train.adapters import human_size

    fig, (ax,) = new_figure()
    names = list(sizes)[::-1]
    values = [sizes[n] / 1e6 for n in names]
    ax.barh(names, values, color="#3a7d44")
    for y, n in enumerate(names):
        ax.text(values[y], y, f" {human_size(sizes[n])}", va="center", fontsize=8)
    ax.set_xlabel("size on disk (MB)")
    ax.set_title(title)
    ax.set_xlim(0, max(values) * 1.3)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------- Ollama's Modelfile

def chatml_template(tokenizer) -> str:
    """Ollama's Go-template TEMPLATE that renders the tokenizer's ChatML chat template (``<|im_start|>role\\n
    content<|im_end|>\\n`` per message, then ``<|im_start|>assistant\\n``), including the default system message
    the template inserts when a conversation has none. Checked on probe conversations with ``render_template``;
    ``ValueError`` if the tokenizer's template is not ChatML (then write TEMPLATE by hand)."""
    def hf(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    plain = hf([{"role": "user", "content": "Q"}])
    tail = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    default = re.fullmatch(r"<\|im_start\|>system\n(.*)<\|im_end\|>\n", plain[: -len(tail)], re.S)
    if not plain.endswith(tail) or (plain != tail and default is None):
        raise ValueError("This tokenizer's chat template is not ChatML (<|im_start|>role ... <|im_end|>); write the "
                         f"Modelfile's TEMPLATE by hand from it. It renders a user message 'Q' as {plain!r}.")
    template = "{{- range $i, $m := .Messages }}"
    if default is not None:
        template += ('{{- if and (eq $i 0) (ne $m.Role "system") }}<|im_start|>system\n'
                     f"{default.group(1)}<|im_end|>\n{{{{ end }}}}")
    template += "<|im_start|>{{ $m.Role }}\n{{ $m.Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    probes = [[{"role": "user", "content": "Hi"}], [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
              [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]]
    for messages in probes:
        if render_template(template, messages) != hf(messages):
            raise ValueError(f"The ChatML TEMPLATE does not reproduce this tokenizer's chat template on {messages}: "
                             "write the Modelfile's TEMPLATE by hand.")
    return template


def write_modelfile(gguf_path: str | Path, tokenizer, out_folder: str | Path, system: str | None = None) -> Path:
    """Write ``out_folder/Modelfile`` for Ollama: ``FROM`` the GGUF (relative to the Modelfile), the ChatML
    ``TEMPLATE`` (``chatml_template``), ``SYSTEM`` (default: the course's short training prompt, which the tuned
    model was trained with), ``PARAMETER stop "<|im_end|>"`` and ``temperature 0`` (greedy, as the course
    evaluates). Then: ``ollama create greenleaf -f Modelfile`` and ``ollama run greenleaf``."""
    import os

    if system is None:
        from course_lib.train.rows import SHORT_SYSTEM_PROMPT

        system = SHORT_SYSTEM_PROMPT
    gguf_path, out_folder = Path(gguf_path), Path(out_folder)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"{gguf_path} does not exist: export the GGUF first (ship.export).")
    template = chatml_template(tokenizer)
    if '"""' in system + template:
        raise ValueError('The system prompt contains """, which would end the Modelfile\'s quoted block early.')
    out_folder.mkdir(parents=True, exist_ok=True)
    source = Path(os.path.relpath(gguf_path.resolve(), out_folder.resolve())).as_posix()
    lines = [f"# {gguf_path.name}: sha256 {sha256_file(gguf_path)}, written by course_lib {__version__}",
             f"FROM ./{source}" if not source.startswith("..") else f"FROM {gguf_path.resolve()}",
             f'TEMPLATE """{template}"""', f'SYSTEM """{system}"""',
             f'PARAMETER stop "{tokenizer.eos_token}"', "PARAMETER temperature 0", ""]
    path = out_folder / "Modelfile"
    path.write_text("\n".join(lines))
    return path


_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_TOKEN = re.compile(r'\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+')


def render_template(template: str, messages: list[dict]) -> str:
    """Render the small part of Go's text/template that ``chatml_template`` uses (``range $i, $m := .Messages``,
    ``if``/``end``, ``and``/``eq``/``ne``, ``$m.Role``/``$m.Content``, ``{{-`` trimming), with ``messages`` as
    Ollama passes them, so a test can check the TEMPLATE against the tokenizer's chat template exactly."""
    parts, pos, trim_next = [], 0, False  # flat list: ("text", s) and ("action", s)
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        text = text.lstrip() if trim_next else text
        parts.append(("text", text.rstrip() if m.group(1) else text))
        parts.append(("action", m.group(2)))
        trim_next, pos = bool(m.group(3)), m.end()
    tail = template[pos:]
    parts.append(("text", tail.lstrip() if trim_next else tail))
    tree, rest = _parse(parts, 0)
    if rest != len(parts):
        raise ValueError("render_template: an {{ end }} without its range or if.")
    dot = {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}
    return _run(tree, dot, {})


def _parse(parts, i, closing=False):
    nodes = []
    while i < len(parts):
        kind, value = parts[i]
        if kind == "text":
            nodes.append(("text", value))
        elif value == "end":
            if not closing:
                raise ValueError("render_template: an {{ end }} without its range or if.")
            return nodes, i
        elif value.startswith(("range ", "if ")):
            body, i = _parse(parts, i + 1, closing=True)
            nodes.append((value.split()[0], value.split(None, 1)[1], body))
        else:
            nodes.append(("expr", value))
        i += 1
    if closing:
        raise ValueError("render_template: a range or if without its {{ end }}.")
    return nodes, i


def _run(nodes, dot, env) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "expr":
            out.append(str(_eval(_TOKEN.findall(node[1]), dot, env)))
        elif node[0] == "if":
            if _eval(_TOKEN.findall(node[1]), dot, env):
                out.append(_run(node[2], dot, env))
        else:
            match = re.fullmatch(r"\$(\w+), \$(\w+) := (.+)", node[1])
            if match is None:
                raise ValueError(f"render_template supports 'range $i, $m := .Messages', not {node[1]!r}.")
            for index, item in enumerate(_eval(_TOKEN.findall(match.group(3)), dot, env)):
                out.append(_run(node[2], item, {**env, match.group(1): index, match.group(2): item}))
    return "".join(out)


def _eval(tokens: list[str], dot, env):
    functions = {"and": lambda *a: all(a), "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}
    values, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if token == "(":
            depth, j = 1, i + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(tokens[j], 0)
                j += 1
            values.append(_eval(tokens[i + 1 : j - 1], dot, env))
            i = j
            continue
        if token in functions:
            values.append(token)
        elif token.startswith('"'):
            values.append(json.loads(token))
        elif token.isdigit():
            values.append(int(token))
        elif token.startswith("$"):
            name, *fields = token[1:].split(".")
            value = env[name]
            for f in fields:
                value = value[f]
            values.append(value)
        elif token.startswith("."):
            values.append(dot[token[1:]])
        else:
            raise ValueError(f"render_template does not support {token!r}.")
        i += 1
    if values and isinstance(values[0], str) and values[0] in functions and tokens[0] in functions:
        return functions[values[0]](*values[1:])
    if len(values) != 1:
        raise ValueError(f"render_template: cannot evaluate {' '.join(tokens)!r}.")
    return values[0]
