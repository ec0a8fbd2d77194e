"""Rotary position embeddings that stay exact at any absolute position.

A live session never restarts its clock: after an hour the positions are in the millions. In
float32, pos * inv_freq at pos = 1e7 has an error of about one radian, so attention scores
would drift with session length. Here the angle is reduced modulo 2*pi in float64 first and only
the cos/sin are cast down, so a query/key pair at relative offset d scores the same at position
1e7 as at position 10.

Pairs are interleaved (dims 2i, 2i+1 rotate together). The tables hold cos and a signed sin so
rotating is x * cos + swap_pairs(x) * sin: three kernels, no concatenation.
"""

from __future__ import annotations

import math

import torch

TWO_PI = 2.0 * math.pi


def inverse_frequencies(head_dim: int, base: float, device: torch.device | None = None):
    """float64 [head_dim // 2]: base ** (-2i / head_dim)."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim
    return base**-exponents


def rotary_tables(
    positions: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin tables [..., T, head_dim] for integer positions [..., T].

    Works on CPU and CUDA in float64; MPS has no float64, so its angles are made on the CPU.
    """
    device = positions.device
    work = torch.device("cpu") if device.type == "mps" else device
    inv_freq = inverse_frequencies(head_dim, base, work)
    angles = positions.to(work, torch.float64).unsqueeze(-1) * inv_freq
    angles = torch.remainder(angles, TWO_PI)
    cos, sin = torch.cos(angles), torch.sin(angles)
    # Interleave: dim 2i gets -sin (it receives -x[2i+1]), dim 2i+1 gets +sin (receives x[2i]).
    cos = torch.repeat_interleave(cos, 2, dim=-1)
    sin = torch.stack((-sin, sin), dim=-1).flatten(-2)
    return cos.to(device, dtype), sin.to(device, dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [..., T, head_dim] by tables broadcastable to it."""
    if cos.dtype != x.dtype:  # autocast: projections come out in bf16/fp16
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (x1, x0) per pair
    return torch.addcmul(x * cos, swapped, sin)
