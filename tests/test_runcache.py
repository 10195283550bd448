"""course_lib.runcache: results computed once and reused, keyed by everything that could change them."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from course_lib import runcache

PARTS = {"weights": "abc123", "dtype": "torch.float32", "prompts": [[{"role": "user", "content": "hi"}]],
         "max_new_tokens": 24, "batch_size": 8}


class Counter:
    """A ``compute`` that counts its calls and returns a JSON-serialisable result."""

    def __init__(self, result=None) -> None:
        self.calls = 0
        self.result = result if result is not None else {"answers": ["a", "b"], "score": 0.5}

    def __call__(self):
        self.calls += 1
        return self.result


def test_cached_computes_once_then_reuses(tmp_path):
    compute = Counter()
    result, path, reused = runcache.cached("task-answers", PARTS, compute, folder=tmp_path)
    assert (result, reused, compute.calls) == (compute.result, False, 1)
    assert path.parent == tmp_path and path.name.startswith("task-answers-") and path.suffix == ".json"
    assert json.loads(path.read_text())["result"] == compute.result
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file, then moved into place
    again, path2, reused2 = runcache.cached("task-answers", copy.deepcopy(PARTS), compute, folder=tmp_path)
    assert (again, path2, reused2, compute.calls) == (compute.result, path, True, 1)


@pytest.mark.parametrize("key, value", [("weights", "abc124"), ("dtype", "torch.bfloat16"), ("max_new_tokens", 25),
                                        ("batch_size", 4), ("prompts", [[{"role": "user", "content": "hi!"}]]),
                                        ("extra", True)])
def test_a_change_in_any_key_part_recomputes(tmp_path, key, value):
    compute = Counter()
    _, first, _ = runcache.cached("task-answers", PARTS, compute, folder=tmp_path)
    _, second, reused = runcache.cached("task-answers", {**PARTS, key: value}, compute, folder=tmp_path)
    assert (reused, compute.calls) == (False, 2) and second != first
    assert runcache.cached("task-answers", PARTS, compute, folder=tmp_path)[2] is True  # the first is still there
    assert compute.calls == 2


def test_another_kind_is_another_result(tmp_path):
    compute = Counter()
    runcache.cached("task-answers", PARTS, compute, folder=tmp_path)
    _, path, reused = runcache.cached("regression", PARTS, compute, folder=tmp_path)
    assert not reused and compute.calls == 2 and path.name.startswith("regression-")


def test_key_of_ignores_dict_order_and_is_short():
    assert runcache.key_of({"a": 1, "b": [1, 2]}) == runcache.key_of({"b": [1, 2], "a": 1})
    assert runcache.key_of({"a": 1}) != runcache.key_of({"a": 2})
    assert len(runcache.key_of(PARTS)) == 20


@pytest.mark.parametrize("corrupt", ['{"kind": "task-answers", "parts": {"weights": "ab', "", '{"kind": "x"}'])
def test_a_half_written_file_is_computed_again(tmp_path, corrupt):
    compute = Counter()
    _, path, _ = runcache.cached("task-answers", PARTS, compute, folder=tmp_path)
    path.write_text(corrupt)  # an interrupted run's leftovers
    result, path2, reused = runcache.cached("task-answers", PARTS, compute, folder=tmp_path)
    assert (result, path2, reused, compute.calls) == (compute.result, path, False, 2)
    assert json.loads(path.read_text())["result"] == compute.result  # replaced by a good file
    assert runcache.cached("task-answers", PARTS, compute, folder=tmp_path)[2] is True


def test_cached_makes_its_folder(tmp_path):
    folder = tmp_path / "results" / "deeper"
    result, path, reused = runcache.cached("k", {"x": 1}, Counter([1, 2, 3]), folder=folder)
    assert (result, reused) == ([1, 2, 3], False) and path.parent == folder


def test_weights_fingerprint_changes_with_one_weight(tiny_model):
    model = tiny_model[0]
    before = runcache.weights_fingerprint(model)
    assert len(before) == 16
    twin = copy.deepcopy(model)
    assert runcache.weights_fingerprint(twin) == before  # same weights, another object: same fingerprint
    name, param = next((n, p) for n, p in twin.named_parameters() if p.numel() > 1000)
    with torch.no_grad():
        param.view(-1)[1] += 0.5  # one weight, and not one of the sampled values (every numel // 64-th)
    assert runcache.weights_fingerprint(twin) != before
    assert runcache.weights_fingerprint(model) == before  # the original is untouched
    norm = copy.deepcopy(model)
    with torch.no_grad():
        next(p for n, p in norm.named_parameters() if "norm" in n).view(-1)[-1] += 0.5
    assert runcache.weights_fingerprint(norm) != before
    assert runcache.weights_fingerprint(copy.deepcopy(model).to(torch.bfloat16)) != before  # the dtype counts too
