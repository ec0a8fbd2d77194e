"""The torch decode step: one token through every window that holds it, in torch ops.

What a GPU runs (eagerly, or captured as a CUDA graph by models/cuda_graph.py), and what a CPU
runs for models the numba step does not serve (int8, bfloat16). ``step`` keeps every shape
static and every index on the device, computed from a 0-d `pos` tensor, so it can be captured;
the eager path runs exactly the same code. With ``cpu_kernels`` (a CPU model) the two
attentions go to the numba kernels of models/cpu_decode.py and the products stay torch's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from livegen.models.cpu_decode import ring_attention, slot_attention

if TYPE_CHECKING:
    from livegen.models.streaming import StreamingDecoder


class TorchStep:
    """decode_one_token(token, position) -> logits [V] over a StreamingDecoder's caches."""

    name = "torch"

    def __init__(self, decoder: StreamingDecoder) -> None:
        self.decoder = decoder
        device = decoder.device
        self.rows = torch.arange(decoder.M, device=device)
        self.heads = torch.arange(decoder.config.heads, device=device)
        self.self_slots = torch.arange(decoder.L + 1, device=device)

    def decode_one_token(self, token: int, position: int) -> torch.Tensor:
        device = self.decoder.device
        token_t = torch.tensor([token], device=device)
        pos_t = torch.tensor(position, device=device)
        return self.step(token_t, pos_t).flatten()

    @torch.no_grad()
    def step(self, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Decode token [1] at position pos (0-d tensor): logits [1, V] (float32)."""
        d = self.decoder
        model, N, L, S, M = d.model, d.N, d.L, d.S, d.M
        # Which window each of the M rows holds at pos, and where its latent goes.
        k_hi = torch.div(pos, S, rounding_mode="floor")
        k_rows = k_hi - torch.remainder(k_hi - self.rows, M)
        k_lo = torch.div(pos - L + S, S, rounding_mode="floor").clamp_min(0)
        active = k_rows >= k_lo
        w_rows = k_rows * S
        self_slot = torch.where(active, pos - w_rows, L)
        lo_rows = torch.where(active, (w_rows - (N - L)).clamp_min(0), 0)

        x = model.embed(token)  # [1, D]
        normed = model.cross.norm(x)[None]  # [1, 1, D]
        cos, sin = model.rotary(pos[None], d.dtype)  # [1, hd]
        k, v = model.cross.keys_values(normed, cos, sin)  # [1, H, 1, hd]
        ring_slot = torch.remainder(pos, N)[None]
        d.ring_k.index_copy_(1, ring_slot, k[0])
        d.ring_v.index_copy_(1, ring_slot, v[0])
        d.slot_pos.index_copy_(0, ring_slot, pos[None])

        q = model.cross.queries(normed, cos, sin)[0]  # [H, 1, hd]
        y = self._cross_attention(q, lo_rows, pos)
        x = model.cross.finish(x.expand(M, -1)[:, None], y)

        # Self-attention: row m writes slot self_slot[m] of its window and sees slots <= it.
        if d.cpu_kernels:  # as slot ranges
            seen_lo, seen_hi = torch.where(active, 0, L), torch.where(active, self_slot, L)
        else:  # as a mask
            seen = torch.where(
                active[:, None],
                self.self_slots[None, :] <= self_slot[:, None],
                self.self_slots[None, :] == L,
            )[:, None, None, :]  # [M, 1, 1, L + 1]
        rows, heads, slots = self.rows[:, None], self.heads[None, :], self_slot[:, None]
        for block, kbuf, vbuf in zip(model.blocks, d.self_k, d.self_v):
            q, kk, vv = block.attn.project(block.norm(x), cos, sin)  # [M, H, 1, hd]
            kbuf.index_put_((rows, heads, slots), kk[:, :, 0])
            vbuf.index_put_((rows, heads, slots), vv[:, :, 0])
            if d.cpu_kernels:
                y = slot_attention(q, kbuf, vbuf, seen_lo, seen_hi)
            else:
                y = F.scaled_dot_product_attention(q, kbuf, vbuf, attn_mask=seen)
            x = x + block.attn.output(y)
            x = x + block.mlp(x)
        owner = torch.remainder(k_lo, M)[None]  # the oldest window owns the logits
        hidden = x[:, 0].index_select(0, owner)  # [1, D]
        return model.head(model.norm(hidden)).float()

    def _cross_attention(
        self, q: torch.Tensor, lo_rows: torch.Tensor, pos: torch.Tensor
    ) -> torch.Tensor:
        """The query is the same for every window, only the visible range differs, so score
        once and mask per row. Returns [M, H, 1, hd]."""
        d = self.decoder
        if d.cpu_kernels:
            return ring_attention(q, d.ring_k, d.ring_v, d.slot_pos, lo_rows, int(pos))
        scores = torch.matmul(q, d.ring_k.transpose(1, 2)) * (d.config.head_dim**-0.5)
        sp = d.slot_pos[None, :]
        visible = (sp >= lo_rows[:, None]) & (sp <= pos)  # [M, N]
        bias = torch.zeros(visible.shape, device=d.device, dtype=scores.dtype)
        bias.masked_fill_(~visible, float("-inf"))
        probs = torch.softmax(scores + bias, dim=-1)  # [H, M, N]
        return torch.matmul(probs, d.ring_v).transpose(0, 1)[:, :, None]  # [M, H, 1, hd]
