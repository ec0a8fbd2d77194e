"""The streaming decoder's CPU fast path: the few-row products of a decode step go to the numba
kernels of kernels/decode_kernels.py instead of torch's GEMM and attention.

Only float32 on the CPU: int8 dynamic-quantised Linears (fbgemm) are already fast at a few rows,
and on a GPU the step is one captured graph of torch ops. CpuStep runs the one-token step, short
appends and the one latent a rollback recomputes; in a float model's torch paths (prefill,
burst refills), RowsLinear takes products of up to ROWS_MAX rows and leaves larger ones to
torch, which is faster there. int8 models keep the torch step, with the numba attention.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from livegen.kernels.decode_kernels import (
    cross_attend,
    gelu,
    layer_norm,
    linear_rows,
    range_attend,
    rotary_rows,
    rotate,
)
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.rotary import inverse_frequencies

# Rows up to which linear_rows beats torch's F.linear on this CPU (2048x512 weights, one thread:
# 8 rows 4.2 vs 6.3 ms, 12 rows even, 16 rows 8.9 vs 8.0; BENCHMARKS.md).
ROWS_MAX = 8


def applies(model: nn.Module, device: torch.device) -> bool:
    """Whether the fast path serves this model: float32 weights on the CPU."""
    first = next(model.parameters())
    return device.type == "cpu" and first.dtype == torch.float32


class RowsLinear(nn.Module):
    """An nn.Linear (the same Parameters) that multiplies a few rows with linear_rows."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        if linear.bias is not None:  # the model's linears have none (step_supported checks)
            raise ValueError("RowsLinear takes bias-free linears")
        self.weight = linear.weight
        self._weight = linear.weight.detach().numpy()  # a view: in-place loads show through

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > ROWS_MAX or rows == 0 or torch.is_grad_enabled():
            return F.linear(x, self.weight)
        flat = x.reshape(rows, x.shape[-1]).contiguous()
        out = torch.empty(rows, self._weight.shape[0])
        linear_rows(self._weight, flat.numpy(), out.numpy())
        return out.view(*x.shape[:-1], -1)


def _plain(module: nn.Module) -> bool:
    return type(module) is nn.Linear and module.bias is None


def with_row_kernels(model: nn.Module) -> nn.Module:
    """A copy of the module tree whose nn.Linears are RowsLinear; every tensor (and any
    quantised module's packed weights) stays shared with model, while the containers that
    hold them (parameters, buffers, hooks) are the copy's own."""
    clone = copy.copy(model)
    for name, value in vars(model).items():
        if isinstance(value, dict | set | list):
            setattr(clone, name, copy.copy(value))
    for name, child in model.named_children():  # into the copy's own _modules dict
        clone.add_module(name, RowsLinear(child) if _plain(child) else with_row_kernels(child))
    return clone


def ring_attention(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    slot_pos: torch.Tensor,
    lo: torch.Tensor,
    hi: int,
) -> torch.Tensor:
    """Cross-attention of one query [H, 1, hd] over the ring [H, N, hd]; row m sees positions
    lo[m]..hi. Returns [M, H, 1, hd]."""
    heads, _, hd = keys.shape
    out = torch.empty(lo.numel(), heads, hd)
    cross_attend(
        q.reshape(heads, hd).contiguous().numpy(),
        keys.numpy(),
        values.numpy(),
        slot_pos.numpy(),
        lo.numpy(),
        hi,
        np.float32(hd**-0.5),
        out.numpy(),
    )
    return out[:, :, None]


def slot_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    """Self-attention of q [M, H, 1, hd] over keys/values [M, H, S, hd]; row m sees slots
    lo[m]..hi[m]. Returns [M, H, 1, hd]."""
    rows, heads, _, hd = keys.shape
    out = torch.empty(rows, heads, hd)
    range_attend(
        q.reshape(rows, heads, hd).contiguous().numpy(),
        keys.numpy(),
        values.numpy(),
        np.arange(rows),
        lo.numpy(),
        hi.numpy(),
        np.float32(hd**-0.5),
        out.numpy(),
    )
    return out[:, :, None]


# ---- the one-token step, all numba --------------------------------------------------------


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy()


def _norm(norm: nn.LayerNorm) -> tuple[np.ndarray, np.ndarray, np.float32]:
    return _array(norm.weight), _array(norm.bias), np.float32(norm.eps)


def step_supported(model: nn.Module) -> bool:
    """CpuStep reads float32 nn.Linear weights without biases (not int8 modules)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    others = [m for m in model.modules() if "Linear" in type(m).__name__ and m not in linears]
    return (
        not others
        and all(m.bias is None and m.weight.dtype == torch.float32 for m in linears)
        and all(m.weight.device.type == "cpu" for m in linears)
    )


Windows = list[tuple[int, int]]  # (self-attention row, window start) of each window holding a token


class CpuStep:
    """StreamingDecoder's step for a float32 model on a CPU: a few consecutive tokens (one, or
    a player's 2-3 token note) as ~15 numba calls per layer over the decoder's own caches
    (numpy views of its tensors). The same math as the torch step, without its ~300 small
    torch ops (1.4 ms of dispatch per token on this CPU, whatever the model size). A batch row
    is one (token, window) pair: only the windows that hold each token, no static shapes.
    `windows_of(position)` says which windows hold a position (the decoder's geometry)."""

    name = "cpu-kernels"

    def __init__(
        self,
        model: PerceiverAR,
        ring_k: torch.Tensor,
        ring_v: torch.Tensor,
        slot_pos: torch.Tensor,
        self_k: list[torch.Tensor],
        self_v: list[torch.Tensor],
        windows_of: Callable[[int], Windows],
    ) -> None:
        self.windows_of = windows_of
        c = model.config
        self.N, self.L, self.H, self.hd, self.D = c.context, c.latents, c.heads, c.head_dim, c.dim
        self.scale = np.float32(c.head_dim**-0.5)
        self.inv_freq = inverse_frequencies(c.head_dim, c.rope_base).numpy()
        self.embed = _array(model.embed.weight)
        cross = model.cross
        self.cross_norm = _norm(cross.norm)
        self.cross_q, self.cross_kv = _array(cross.q.weight), _array(cross.kv.weight)
        self.cross_proj, self.cross_mlp = _array(cross.proj.weight), self._mlp(cross.mlp)
        self.blocks = [
            (_norm(b.norm), _array(b.attn.qkv.weight), _array(b.attn.proj.weight), self._mlp(b.mlp))
            for b in model.blocks
        ]
        self.final_norm, self.head = _norm(model.norm), _array(model.head.weight)
        self.ring_k, self.ring_v, self.slot_pos = ring_k.numpy(), ring_v.numpy(), slot_pos.numpy()
        self.self_k = [t.numpy() for t in self_k]
        self.self_v = [t.numpy() for t in self_v]

    @staticmethod
    def _mlp(mlp: nn.Module) -> tuple:
        return _norm(mlp.norm), _array(mlp.fc.weight), _array(mlp.proj.weight)

    def decode_one_token(self, token: int, position: int) -> torch.Tensor:
        """Logits [V] after `token` at `position` (every window holding it, one call)."""
        return self.decode_tokens([token], position, [self.windows_of(position)])

    def decode_tokens(self, tokens: list[int], start: int, windows: list[Windows]) -> torch.Tensor:
        """Decode tokens at positions start, start + 1, ...; windows[t] lists (self-attention
        row, window start) of every window holding token t, its owner first. Every window must
        hold its latents up to `start` - 1 (StreamingDecoder's invariant between calls), and no
        self-attention row may hold two windows within one call (a window that starts inside
        the chunk must not reuse the row of a window an earlier token is in: the caller splits
        the chunk there). Returns the logits [V] after the last token."""
        N, L, H, hd, D = self.N, self.L, self.H, self.hd, self.D
        T = len(tokens)
        positions = np.arange(start, start + T)
        cos, sin = np.empty((T, hd), np.float32), np.empty((T, hd), np.float32)
        rotary_rows(positions, self.inv_freq, cos, sin)
        # Cross-attention keys/values of the new tokens (into the ring below, token by token).
        x = self.embed[tokens]  # [T, D]
        normed = _layer_norm(x, self.cross_norm)
        kv = _linear(self.cross_kv, normed).reshape(T, 2, H, hd)
        keys = np.ascontiguousarray(kv[:, 0])
        rotate(keys, cos, sin)
        # One batch row per (token, window that holds it).
        token_of = np.array([t for t, ws in enumerate(windows) for _ in ws])
        row_of = np.array([m for ws in windows for m, _ in ws])
        slot_of = np.array([start + t - w for t, ws in enumerate(windows) for _, w in ws])
        rows = len(token_of)
        q = _linear(self.cross_q, normed).reshape(T, H, hd)
        rotate(q, cos, sin)
        attended = np.empty((rows, H, hd), np.float32)
        a = 0
        for t, ws in enumerate(windows):
            # Token t enters the ring just before it attends: a later token of the chunk
            # overwrites the slot of position (its own - N), which t's windows may still see.
            slot = (start + t) % N
            self.ring_k[:, slot] = keys[t]
            self.ring_v[:, slot] = kv[t, 1]
            self.slot_pos[slot] = start + t
            lo = np.array([max(0, w - (N - L)) for _, w in ws])
            out = attended[a : a + len(ws)]
            cross_attend(
                q[t], self.ring_k, self.ring_v, self.slot_pos, lo, start + t, self.scale, out
            )
            a += len(ws)
        x = x[token_of]  # [rows, D]: every window starts from the token's embedding
        x += _linear(self.cross_proj, attended.reshape(rows, D))
        x += _mlp(x, self.cross_mlp)
        # Self-attention over each window's latents: write all rows' keys, then row a sees its
        # window's slots 0..slot_of[a] (earlier tokens of this chunk included).
        cos, sin = cos[token_of], sin[token_of]
        first = np.zeros(rows, dtype=np.int64)
        for (norm, qkv_w, proj, mlp), kbuf, vbuf in zip(self.blocks, self.self_k, self.self_v):
            qkv = _linear(qkv_w, _layer_norm(x, norm)).reshape(rows, 3, H, hd)
            q, k = np.ascontiguousarray(qkv[:, 0]), np.ascontiguousarray(qkv[:, 1])
            rotate(q, cos, sin)
            rotate(k, cos, sin)
            kbuf[row_of, :, slot_of] = k
            vbuf[row_of, :, slot_of] = qkv[:, 2]
            range_attend(q, kbuf, vbuf, row_of, first, slot_of, self.scale, attended)
            x += _linear(proj, attended.reshape(rows, D))
            x += _mlp(x, mlp)
        owner = rows - len(windows[-1])  # the last token's first row
        logits = _linear(self.head, _layer_norm(x[owner : owner + 1], self.final_norm))
        return torch.from_numpy(logits[0])


def _layer_norm(x: np.ndarray, norm: tuple) -> np.ndarray:
    out = np.empty_like(x)
    layer_norm(x, *norm, out)
    return out


def _linear(weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = np.empty((x.shape[0], weight.shape[0]), np.float32)
    linear_rows(weight, x, out)
    return out


def _mlp(x: np.ndarray, mlp: tuple) -> np.ndarray:
    norm, fc, proj = mlp
    hidden = _linear(fc, _layer_norm(x, norm))
    gelu(hidden)
    return _linear(proj, hidden)
