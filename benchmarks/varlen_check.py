"""On a GPU: the course's varlen attention gives the same loss whether it gets the packed row's boundaries
(``cu_seq_lens_q``, as ``qlora.packed_loss`` passes them) or only the position ids (as trl's padding-free collator
does), and both equal each example run alone with sdpa. Fast profile (the tiny model).

    COURSE_PROFILE=fast python benchmarks/varlen_check.py
"""

import torch

from course_lib import qlora

assert torch.cuda.is_available(), "needs a CUDA GPU"
ok, why = qlora.varlen_available()
print(why)
model, _ = qlora.load_4bit(attention=qlora.register_varlen_attention())
torch.manual_seed(0)
rows = [torch.randint(0, 1000, (n,)) for n in (37, 120, 5, 64)]
with torch.no_grad():
    with_bounds = qlora.packed_loss(model, rows).item()
    ids = torch.cat(rows)[None].cuda()
    positions = torch.cat([torch.arange(len(r)) for r in rows])[None].cuda()
    target = ids.clone()
    target[0, torch.tensor([0, 37, 157, 162])[1:]] = -100
    hidden = model.model(input_ids=ids, position_ids=positions, use_cache=False).last_hidden_state
    positions_only = qlora.chunked_cross_entropy(hidden[0, :-1], model.lm_head, target[0, 1:]).item()
    model.set_attn_implementation("sdpa")
    alone = sum(model(input_ids=r[None].cuda(), labels=r[None].cuda(), use_cache=False).loss.item() * (len(r) - 1)
                for r in rows) / sum(len(r) - 1 for r in rows)
print(f"cu_seq_lens {with_bounds:.6f}, position ids only {positions_only:.6f}, each alone (sdpa) {alone:.6f}")
assert abs(with_bounds - positions_only) < 1e-6 and abs(with_bounds - alone) / alone < 5e-3
print("varlen attention: same loss from boundaries or position ids, and as each example alone")
