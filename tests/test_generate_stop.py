"""course_lib.models: stopping generation once the answer's JSON object has closed (_json_closed, JsonClosed and
generate(..., stop_after_json=True))."""

from __future__ import annotations

import pytest
import torch

from course_lib import greenleaf, models


@pytest.mark.parametrize("text, closed", [
    ('{"a": 1}', True),
    ('{"a": 1', False),
    ('{"a": "}"', False),  # the brace inside the string does not close the object
    ('{"a": "}"}', True),
    ('{"a": "{"}', True),  # nor does an opening one inside a string open another
    ('{"a": "say \\"}\\" now"', False),  # escaped quotes: still inside the string
    ('{"a": "say \\"}\\" now"}', True),
    ('{"a": "back\\\\"}', True),  # an escaped backslash, then the string's real closing quote
    ('{"a": "back\\\\"', False),
    ('{"a": {"b": 1}', False),  # nested: the inner object closed, the outer not
    ('{"a": {"b": {"c": [1, {"d": 2}]}}}', True),
    ('Sure! Here is the JSON: {"category": "billing"} and some more text', True),  # text before (and after)
    ('The "answer" is: {"a": 1}', True),  # quotes before the object are not a string of the object
    ('oops } then {"a": 1}', True),  # a stray closing brace before the object is ignored
    ('oops } then {"a": 1', False),
    ('```json\n{"a": [1, {"b": "}"}]}\n```', True),
    ("", False),
    ("no object here, just words.", False),
    ("}", False),
    ('[1, 2, "x"]', False),
    ('{"category": "billing", "priority": "high", "needs_human": true, "reply": "On it. Happy growing!', False),
    (greenleaf.format_target("billing", "high", True, 'A "quoted" {brace} reply. Happy growing!'), True),
])
def test_json_closed(text, closed):
    assert models._json_closed(text) is closed


def test_json_closed_at_the_right_moment_of_a_growing_answer():
    target = greenleaf.format_target("shipping", "low", False, "We sent it {today}. Happy growing!")
    flags = [models._json_closed(target[:n]) for n in range(len(target) + 1)]
    assert flags.index(True) == len(target)  # first closed once the very last character is there


def _ids(tokenizer, texts: list[str], prompt: list[list[int]]) -> torch.Tensor:
    """Rows of ``prompt + encoded text``, right-padded with the pad token to one length."""
    rows = [p + tokenizer.encode(t, add_special_tokens=False) for p, t in zip(prompt, texts)]
    width = max(map(len, rows))
    return torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])


def test_json_closed_criteria_gives_one_bool_per_row(tokenizer):
    prompt_ids = tokenizer.encode('{"x": 1} prompt', add_special_tokens=False)  # a closed object in the PROMPT
    width = len(prompt_ids)
    texts = ['{"a": 1}', '{"a": ', "no json", 'pre {"a": "}"} post']
    ids = _ids(tokenizer, texts, [prompt_ids] * len(texts))
    stop = models.JsonClosed(tokenizer, width)
    out = stop(ids, scores=None)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bool and out.shape == (4,)
    assert out.tolist() == [True, False, False, True]  # only the new text after prompt_length counts
    assert models.JsonClosed(tokenizer, 0)(ids, None).tolist() == [True, True, True, True]


CONVERSATIONS = [greenleaf.messages_for("My fern has yellow leaves."),
                 greenleaf.messages_for("Where is my order? It has been two weeks and the tracking is stuck."),
                 [{"role": "user", "content": "hi"}]]


def test_generate_with_stop_after_json_returns_one_string_per_conversation(tiny_model):
    model, tok = tiny_model
    answers = models.generate(model, tok, CONVERSATIONS, max_new_tokens=8, batch_size=2, stop_after_json=True)
    assert isinstance(answers, list) and len(answers) == len(CONVERSATIONS)
    assert all(isinstance(a, str) for a in answers)
    assert all(len(tok.encode(a, add_special_tokens=False)) <= 8 + 2 for a in answers)
    assert tok.padding_side == "right"  # restored after generating
    assert models.generate(model, tok, [], stop_after_json=True) == []


@pytest.fixture
def generate_calls(tiny_model, monkeypatch):
    """Records, for each ``model.generate`` call, the prompt width, the new tokens and the stopping criteria."""
    model = tiny_model[0]
    calls = []
    original = type(model).generate

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        width = kwargs["input_ids"].shape[1]
        calls.append({"width": width, "new": out.shape[1] - width, "stops": kwargs.get("stopping_criteria")})
        return out

    monkeypatch.setattr(type(model), "generate", spy)
    return calls


def test_stop_after_json_passes_the_criteria_only_when_asked(tiny_model, generate_calls):
    model, tok = tiny_model
    models.generate(model, tok, CONVERSATIONS, max_new_tokens=4, batch_size=2)
    assert [c["stops"] for c in generate_calls] == [None, None]
    models.generate(model, tok, CONVERSATIONS, max_new_tokens=4, batch_size=2, stop_after_json=True)
    for call in generate_calls[2:]:
        [stop] = call["stops"]
        assert isinstance(stop, models.JsonClosed) and stop.prompt_length == call["width"]


def test_stop_after_json_stops_when_the_new_text_closes(tiny_model, generate_calls, monkeypatch):
    # The tiny random model answers with newlines; pretend that three of them "close the JSON". The prompts hold
    # newlines too (chat template), so this also shows that only the NEW text is checked.
    model, tok = tiny_model
    plain = models.generate(model, tok, CONVERSATIONS, max_new_tokens=6, batch_size=2)
    assert [c["new"] for c in generate_calls] == [6, 6]
    monkeypatch.setattr(models, "_json_closed", lambda text: False)  # never closed: nothing changes
    assert models.generate(model, tok, CONVERSATIONS, max_new_tokens=6, batch_size=2, stop_after_json=True) == plain
    assert [c["new"] for c in generate_calls[2:]] == [6, 6]
    monkeypatch.setattr(models, "_json_closed", lambda text: text.count("\n") >= 3)
    stopped = models.generate(model, tok, CONVERSATIONS, max_new_tokens=6, batch_size=2, stop_after_json=True)
    assert [c["new"] for c in generate_calls[4:]] == [3, 3]
    assert len(stopped) == len(plain) and all(isinstance(a, str) for a in stopped)
    monkeypatch.setattr(models, "_json_closed", lambda text: True)  # closed at once: one new token per batch
    models.generate(model, tok, CONVERSATIONS, max_new_tokens=6, batch_size=2, stop_after_json=True)
    assert [c["new"] for c in generate_calls[6:]] == [1, 1]
