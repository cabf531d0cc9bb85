"""The fixed-shape graph modules against sam2's own modules they replace."""

import numpy as np
import pytest
import torch
from sam2.modeling.sam2_utils import get_1d_sine_pe

from mixqsam2.errors import UserInputError
from mixqsam2.models.graphs import MemoryAttentionGraph, _rope_attention
from mixqsam2.models.rope import rope_tables


def test_real_rope_attention_equals_sam2_rope_attention_with_excluded_pointer_tokens(pico):
    """Cross-attention over 3 memory frames + 4 pointer tokens: sam2's complex RoPE vs cos/sin."""
    attention = pico.memory_attention.layers[0].cross_attn_image
    hw = pico.sam_image_embedding_size ** 2
    torch.manual_seed(0)
    q = torch.randn(2, hw, pico.hidden_dim)
    k = torch.randn(2, 3 * hw + 4, pico.mem_dim)
    with torch.no_grad():
        expected = attention(q, k, k, num_k_exclude_rope=4)
        side = pico.sam_image_embedding_size
        freqs = attention.compute_cis(end_x=side, end_y=side)
        got = _rope_attention(attention, q, k, k, rope_tables(freqs), memories=3)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def _sam2_memory_attention(model, image_embed, memories, slots, pointers, distances, window):
    """sam2's memory attention on the variable-length memory a tracker would assemble."""
    hw = memories[0].shape[0]
    memory_pos_enc = model.memory_encoder.position_encoding(torch.zeros(1, model.mem_dim, *image_embed.shape[-2:]))
    memory_pos_enc = memory_pos_enc.flatten(2).permute(2, 0, 1)
    memory = [m[:, None] for m in memories]
    memory_pos = [memory_pos_enc + model.maskmem_tpos_enc[s] for s in slots]
    split = model.hidden_dim // model.mem_dim
    ptr = torch.stack(pointers)[:, None].reshape(-1, 1, split, model.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
    rel = torch.tensor(distances, dtype=torch.float32) / window
    ptr_pos = model.obj_ptr_tpos_proj(get_1d_sine_pe(rel, dim=model.hidden_dim))[:, None].repeat_interleave(split, 0)
    curr = image_embed.flatten(2).permute(2, 0, 1)
    curr_pos = model.image_encoder.neck.position_encoding(image_embed).flatten(2).permute(2, 0, 1)
    out = model.memory_attention(curr=[curr], curr_pos=[curr_pos], memory=torch.cat([*memory, ptr]),
                                 memory_pos=torch.cat([*memory_pos, ptr_pos]), num_obj_ptr_tokens=ptr.shape[0])
    assert memory[0].shape[0] == hw
    return out.permute(1, 2, 0).reshape(1, model.hidden_dim, *image_embed.shape[-2:])


def test_fixed_bank_attention_equals_sam2_on_the_valid_entries_only(pico):
    """Invalid bank slots and pointer slots are masked out: the same result as leaving them out."""
    torch.manual_seed(1)
    capacity, hw, side = 4, pico.sam_image_embedding_size ** 2, pico.sam_image_embedding_size
    graph = MemoryAttentionGraph(pico, capacity)
    image_embed = torch.randn(1, pico.hidden_dim, side, side)
    cond = torch.randn(1, 1, hw, pico.mem_dim)
    bank = torch.randn(1, capacity, hw, pico.mem_dim)
    bank_valid = torch.tensor([[True, False, True, False]])
    bank_slot = torch.tensor([[3, 0, 1, 2]])
    pointers = torch.randn(1, graph.num_pointers, pico.hidden_dim)
    pointer_valid = torch.zeros(1, graph.num_pointers, dtype=torch.bool)
    pointer_valid[0, [0, 1, 5]] = True
    tpos = torch.rand(1, graph.num_pointers)
    with torch.no_grad():
        got = graph(image_embed, cond, bank, bank_valid, bank_slot, pointers, pointer_valid, tpos)
        window = pico.max_obj_ptrs_in_encoder - 1
        valid_ptrs = [0, 1, 5]
        expected = _sam2_memory_attention(
            pico, image_embed, [cond[0, 0], bank[0, 0], bank[0, 2]], [pico.num_maskmem - 1, 3, 1],
            [pointers[0, i] for i in valid_ptrs], [float(tpos[0, i]) * window for i in valid_ptrs], window,
        )
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, graph(image_embed, cond, bank, bank_valid | True, bank_slot, pointers,
                                         pointer_valid, tpos), atol=1e-3)  # the masked slots would matter
    assert np.isfinite(got.numpy()).all()


def test_the_memory_attention_graph_stores_one_rope_table_for_all_layers(pico):
    """sam2's configs share one RoPE shape across layers: the graph keeps one cos/sin pair, and no
    table tiled over the bank (hiera_t's graph would carry hundreds of MB otherwise)."""
    graph = MemoryAttentionGraph(pico, capacity=6)
    tables = {name: b.shape for name, b in graph.named_buffers() if "rope" in name}
    hw = pico.sam_image_embedding_size ** 2
    assert tables == {"rope0_cos": (hw, pico.hidden_dim), "rope0_sin": (hw, pico.hidden_dim)}


# bank validity and temporal slots per object: the newest valid memory is the first, the second,
# the third (an invalid entry holds the smallest slot), the second (a tie goes to the lower index);
# the last object has no valid memory
BANK_VALID = [[1, 1, 0, 1], [1, 1, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]]
BANK_SLOT = [[0, 1, 5, 3], [2, 0, 1, 4], [0, 3, 1, 2], [3, 1, 1, 4], [0, 1, 2, 3]]


def _attention_inputs(model, graph, seed=2):
    torch.manual_seed(seed)
    side, n = model.sam_image_embedding_size, len(BANK_VALID)
    capacity, hw = graph.memories - 1, side * side
    return (torch.randn(1, model.hidden_dim, side, side), torch.randn(n, 1, hw, model.mem_dim),
            torch.randn(n, capacity, hw, model.mem_dim), torch.tensor(BANK_VALID).bool(), torch.tensor(BANK_SLOT),
            torch.randn(n, graph.num_pointers, model.hidden_dim), torch.rand(n, graph.num_pointers) < 0.5,
            torch.rand(n, graph.num_pointers))


def _newest(valid, slots):
    """The bank index of the newest valid memory (smallest slot, then lowest index), or None."""
    held = [(slot, index) for index, (ok, slot) in enumerate(zip(valid, slots)) if ok]
    return min(held)[1] if held else None


def test_pooled_bank_attention_equals_attending_to_every_token_replaced_by_its_block_mean(pico, monkeypatch):
    """memory_pool B: one key per B x B block with + log(B^2) on its logit is the same as B^2 keys
    that all equal the block's mean (after RoPE) with values equal to its mean. The reference runs
    the unpooled graph with the cross-attention keys and values of every bank memory but the
    newest (smallest temporal slot) so replaced."""
    import mixqsam2.models.graphs as graphs

    side, hw = pico.sam_image_embedding_size, pico.sam_image_embedding_size ** 2
    pooled, plain = MemoryAttentionGraph(pico, 4, memory_pool=2), MemoryAttentionGraph(pico, 4)
    inputs = _attention_inputs(pico, plain)
    newest = [_newest(v, s) for v, s in zip(BANK_VALID, BANK_SLOT)]
    assert newest == [0, 1, 2, 1, None]
    averaged = torch.tensor([[False] + [i != m for i in range(4)] for m in newest])  # cond + bank
    with torch.no_grad():
        got = pooled(*inputs)
        unpooled = plain(*inputs)
    sdpa = graphs.F.scaled_dot_product_attention

    def block_means(x):  # frames of [N, heads, 5 * hw + P, d] where `averaged` -> 2x2 block means, repeated
        n, heads, _, d = x.shape
        frames = x[:, :, : 5 * hw].reshape(n, heads, 5, side // 2, 2, side // 2, 2, d)
        means = frames.mean(dim=(4, 6), keepdim=True).expand_as(frames)
        frames = torch.where(averaged[:, None, :, None, None, None, None, None], means, frames)
        return torch.cat([frames.reshape(n, heads, 5 * hw, d), x[:, :, 5 * hw :]], dim=2)

    def on_block_means(q, k, v, attn_mask=None):
        cross = k.shape[2] > hw  # self-attention has one frame of keys
        return sdpa(q, block_means(k) if cross else k, block_means(v) if cross else v, attn_mask=attn_mask)

    monkeypatch.setattr(graphs.F, "scaled_dot_product_attention", on_block_means)
    with torch.no_grad():
        expected = plain(*inputs)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    changed = (got - unpooled).abs().amax(dim=(1, 2, 3))
    assert (changed[:4] > 1e-2).all() and changed[4] < 1e-5  # pooled where a bank is held: the comparison means something


def test_a_memory_pool_must_divide_the_token_grid(pico):
    with pytest.raises(UserInputError, match="--memory-pool 3 must divide the memory grid's side"):
        MemoryAttentionGraph(pico, 6, memory_pool=3)
