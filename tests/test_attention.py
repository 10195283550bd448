"""The packed-row attention (``course_lib.attention``): boundaries from position ids, registration under its name,
and the choice ``train_sft`` makes per batch layout and machine (varlen only for packed rows on a GPU with it)."""

from __future__ import annotations

import pytest
import torch

from course_lib import attention


def test_varlen_attention_registers_under_its_name():
    from transformers import AttentionInterface

    try:
        name = attention.register_varlen_attention()
    except attention.AttentionSetupError as err:
        pytest.skip(str(err))
    assert name == attention.VARLEN and name in AttentionInterface._global_mapping


def test_varlen_is_reported_unavailable_without_a_gpu():
    ok, why = attention.varlen_available()
    if not torch.cuda.is_available():
        assert not ok and "no CUDA GPU" in why


def test_boundaries_of_a_packed_row_from_its_position_ids():
    cu, longest = attention.boundaries(torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]]))
    assert cu.tolist() == [0, 3, 5, 9] and cu.dtype == torch.int32 and longest == 4
    cu, longest = attention.boundaries(torch.arange(7))
    assert cu.tolist() == [0, 7] and longest == 7
    with pytest.raises(attention.AttentionSetupError, match="must start at 0"):
        attention.boundaries(torch.tensor([3, 4, 0, 1]))


def test_packed_rows_get_varlen_only_where_it_runs_and_restore_puts_sdpa_back(tiny_model, monkeypatch):
    import copy

    model = copy.deepcopy(tiny_model[0])
    assert model.config._attn_implementation == "sdpa"
    assert attention.for_packed_rows(model, padding_free=False) == ("sdpa", "padded batches: the model's own attention")
    monkeypatch.setattr(attention, "varlen_available", lambda: (False, "no CUDA GPU: sdpa"))
    assert attention.for_packed_rows(model, padding_free=True) == ("sdpa", "no CUDA GPU: sdpa")
    assert model.config._attn_implementation == "sdpa"
    monkeypatch.setattr(attention, "varlen_available", lambda: (True, "an H100"))
    try:
        chosen = attention.for_packed_rows(model, padding_free=True)
    except attention.AttentionSetupError as err:  # a torch without torch.nn.attention.varlen
        pytest.skip(str(err))
    assert chosen == (attention.VARLEN, "an H100") and model.config._attn_implementation == attention.VARLEN
    attention.restore(model, "sdpa")
    assert model.config._attn_implementation == "sdpa"
