"""``POST /v1/chat/completions``: one answer from a base model or a fine-tuned adapter, in the API's shape, with
the token counts (``usage``). Each model is loaded once and kept (``ModelCache``); the conversation goes through the
model's own chat template, as ``course_lib.models.generate`` does, so greedy answers here equal the course's.
``temperature=0`` is greedy decoding; above 0 it samples (``seed`` makes that repeatable). Not streamed.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from typing import Any

import torch
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from course_lib import models
from course_lib.serve import monitor
from course_lib.serve.catalog import find_model
from course_lib.serve.errors import bad_request
from course_lib.serve.store import new_id

router = APIRouter()
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
DEFAULT_MAX_TOKENS = 256


class ModelCache:
    """Models loaded once and kept: every base model asked for, and the last ``max_tuned`` adapters (each on its
    own copy of its base, so adapters never mix). One lock: one generation at a time (generation pads with the
    tokenizer's padding side, which is shared state)."""

    def __init__(self, max_tuned: int = 4) -> None:
        self.bases: dict[str, tuple[Any, Any]] = {}
        self.tuned: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self.max_tuned = max_tuned
        self.lock = threading.RLock()

    def get(self, found: dict, root) -> tuple[Any, Any]:
        """``(model, tokenizer)`` for a ``catalog.find_model`` record (``root``: the data folder)."""
        with self.lock:
            base = found["base"]
            if base not in self.bases:
                self.bases[base] = models.load_model(base, verbose=False)
            if found["adapter_path"] is None:
                return self.bases[base]
            if found["id"] not in self.tuned:
                from course_lib.train import load_adapter

                model, tokenizer = self.bases[base]
                self.tuned[found["id"]] = (load_adapter(copy.deepcopy(model), root / found["adapter_path"]),
                                           tokenizer)
                while len(self.tuned) > self.max_tuned:
                    self.tuned.popitem(last=False)
            self.tuned.move_to_end(found["id"])
            return self.tuned[found["id"]]

    def forget(self, model_id: str) -> None:
        with self.lock:
            self.tuned.pop(model_id, None)


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) == len(content):
            return "".join(parts)
    raise bad_request(f"messages[{index}].content: give a string (or text parts); this service reads text only.",
                      param=f"messages[{index}].content")


def conversation(messages: list[dict]) -> list[dict[str, str]]:
    """The request's messages as ``{"role", "content"}`` text turns (``developer`` counts as ``system``)."""
    if not messages:
        raise bad_request("messages is empty: send at least one user message.", param="messages")
    out = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ROLES:
            raise bad_request(f"messages[{i}].role={role!r}: use one of {sorted(ROLES)}.", param=f"messages[{i}].role")
        out.append({"role": ROLES[role], "content": _text(m.get("content"), i)})
    return out


@torch.inference_mode()
def complete(model, tokenizer, messages: list[dict[str, str]], max_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, stop: list[str] | None = None, seed: int | None = None) -> dict:
    """One answer: ``{"text", "prompt_tokens", "completion_tokens", "finish_reason"}``. Greedy when
    ``temperature`` is 0. ``finish_reason`` is ``"stop"`` when the model ended its turn (or a ``stop`` string came),
    ``"length"`` when ``max_tokens`` ran out."""
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    n_prompt = int(enc["input_ids"].shape[1])
    sampling = temperature > 0
    if sampling and seed is not None:
        torch.manual_seed(seed)
    options = dict(do_sample=True, temperature=temperature, top_p=top_p) if sampling else dict(do_sample=False)
    out = model.generate(**enc, max_new_tokens=max_tokens, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, **options)
    new = out[0, n_prompt:].tolist()
    ended = bool(new) and new[-1] == tokenizer.eos_token_id
    text = tokenizer.decode(new, skip_special_tokens=True)
    cut = [text.find(s) for s in (stop or []) if s and s in text]
    if cut:
        text, ended = text[:min(cut)], True
    return {"text": text.strip(), "prompt_tokens": n_prompt, "completion_tokens": len(new),
            "finish_reason": "stop" if ended else "length"}


class ChatRequest(BaseModel):
    """The fields of OpenAI's request this service reads; others are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[dict]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None  # OpenAI's default is 1 (sampling): pass 0 for greedy answers
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = None
    metadata: dict[str, str] | None = None


def _check(req: ChatRequest) -> tuple[int, float, list[str]]:
    if req.stream:
        raise bad_request("stream=True is not supported by this service: leave stream out.", param="stream")
    if req.n not in (None, 1):
        raise bad_request(f"n={req.n}: this service returns one choice per request.", param="n")
    limit = req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS
    if limit < 1:
        raise bad_request(f"max_tokens={limit}: ask for at least 1 token.", param="max_tokens")
    temperature = 1.0 if req.temperature is None else req.temperature
    if not 0 <= temperature <= 2:
        raise bad_request(f"temperature={temperature}: use a value from 0 (greedy) to 2.", param="temperature")
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    return limit, temperature, stop


@router.post("/v1/chat/completions")
def chat_completions(request: Request, req: ChatRequest) -> dict:
    service = request.app.state.service
    start = time.perf_counter()
    found = find_model(service, req.model)
    limit, temperature, stop = _check(req)
    messages = conversation(req.messages)
    with service.cache.lock:
        model, tokenizer = service.cache.get(found, service.store.root)
        answer = complete(model, tokenizer, messages, limit, temperature, req.top_p or 1.0, stop, req.seed)
    latency = time.perf_counter() - start
    completion_id = new_id("chatcmpl")
    monitor.record(service.store, completion_id, req.model, latency, answer, req.metadata)
    usage = {"prompt_tokens": answer["prompt_tokens"], "completion_tokens": answer["completion_tokens"],
             "total_tokens": answer["prompt_tokens"] + answer["completion_tokens"]}
    return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer["text"], "refusal": None},
                         "finish_reason": answer["finish_reason"], "logprobs": None}],
            "usage": usage, "system_fingerprint": None, "metadata": req.metadata}
