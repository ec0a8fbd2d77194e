"""Causal convolution blocks that run offline (a whole sequence) or streamed (a few frames at a
time, the left context carried in an explicit state tensor), with the same result.

Layout is [batch, time, channels] between blocks (linears act on the last axis); the depthwise
convolution transposes to [batch, channels, time] for Conv1d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Module):
    """Conv1d padded on the left only: output t depends on inputs <= t."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, groups=groups)
        self.context = kernel - 1
        self.cin = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        return self.conv(F.pad(x, (self.context, 0)))

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.zeros(batch, self.cin, self.context, device=device)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, n] new frames; state [B, C, kernel - 1] the inputs before them."""
        full = torch.cat([state, x], dim=-1)
        if self.conv.groups == self.cin and x.shape[-1] == 1:
            # One depthwise frame: a multiply-add is far cheaper than a convolution call.
            y = (full * self.conv.weight[:, 0]).sum(-1, keepdim=True) + self.conv.bias[:, None]
        else:
            y = self.conv(full)
        return y, full[..., full.shape[-1] - self.context :]


class ConvNeXtBlock(nn.Module):
    """Causal depthwise conv, LayerNorm, pointwise MLP, scaled residual (as in Vocos, causal)."""

    def __init__(self, dim: int, kernel: int, mlp_ratio: float, scale: float) -> None:
        super().__init__()
        self.dwconv = CausalConv1d(dim, dim, kernel, groups=dim)
        self.norm = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.pw1 = nn.Linear(dim, hidden)
        self.pw2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), scale))

    def _mlp(self, x: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        h = self.pw2(F.gelu(self.pw1(self.norm(mixed.transpose(1, 2)))))
        return x + self.gamma * h

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C]
        return self._mlp(x, self.dwconv(x.transpose(1, 2)))

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        return self.dwconv.initial_state(batch, device)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mixed, state = self.dwconv.step(x.transpose(1, 2), state)
        return self._mlp(x, mixed), state


class ConvStack(nn.Module):
    """A stack of causal ConvNeXt blocks and a final LayerNorm."""

    def __init__(self, dim: int, depth: int, kernel: int, mlp_ratio: float) -> None:
        super().__init__()
        scale = 1.0 / max(depth, 1)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, kernel, mlp_ratio, scale) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        return [block.initial_state(batch, device) for block in self.blocks]

    def step(
        self, x: torch.Tensor, state: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        new_state = []
        for block, s in zip(self.blocks, state):
            x, s = block.step(x, s)
            new_state.append(s)
        return self.norm(x), new_state
