"""Perceiver AR: one causal cross-attention from the last L positions to all N, then a causal
transformer over those L latents (Hawthorne et al., 2022).

Every position's cross-attention key/value comes from ONE shared LayerNorm + projection of its
token embedding (latent positions included), so a position's cached K/V depend only on its token
and absolute position: they never change when the position slides from latent to prefix. That
is what lets models/streaming.py cache them exactly.

The pieces (`CrossAttention.keys_values`, `SelfAttention.heads`, ...) are shared with the
streaming decoder, so both paths run the same math.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from livegen.models.config import PerceiverARConfig
from livegen.models.rotary import apply_rotary, rotary_tables


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, H*hd] -> [B, H, T, hd]"""
    return x.unflatten(-1, (heads, -1)).transpose(-3, -2)


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    """[B, H, T, hd] -> [B, T, H*hd]"""
    return y.transpose(-3, -2).flatten(-2)


class MLP(nn.Module):
    def __init__(self, config: PerceiverARConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.dim)
        self.fc = nn.Linear(config.dim, config.mlp_hidden, bias=False)
        self.proj = nn.Linear(config.mlp_hidden, config.dim, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch (pre-norm): the caller adds it."""
        return self.drop(self.proj(F.gelu(self.fc(self.norm(x)))))


class CrossAttention(nn.Module):
    """Latent queries attend to every position's keys/values (prefix and latents alike)."""

    def __init__(self, config: PerceiverARConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.norm = nn.LayerNorm(config.dim)  # shared by queries and every key/value
        self.q = nn.Linear(config.dim, config.dim, bias=False)
        self.kv = nn.Linear(config.dim, 2 * config.dim, bias=False)
        self.proj = nn.Linear(config.dim, config.dim, bias=False)
        self.drop = nn.Dropout(config.dropout)
        self.mlp = MLP(config)

    def keys_values(self, normed, cos, sin) -> tuple[torch.Tensor, torch.Tensor]:
        """normed [B, T, D] -> rotated keys and values [B, H, T, hd]."""
        k, v = split_heads(self.kv(normed), 2 * self.heads).chunk(2, dim=-3)
        return apply_rotary(k, cos, sin), v

    def queries(self, normed, cos, sin) -> torch.Tensor:
        return apply_rotary(split_heads(self.q(normed), self.heads), cos, sin)

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """Residual update of the latents x [B, T, D] from attention output [B, H, T, hd]."""
        x = x + self.drop(self.proj(merge_heads(attended)))
        return x + self.mlp(x)


class SelfAttention(nn.Module):
    def __init__(self, config: PerceiverARConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.proj = nn.Linear(config.dim, config.dim, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def project(self, normed, cos, sin) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """normed [B, T, D] -> q, k (rotated), v, each [B, H, T, hd]."""
        q, k, v = split_heads(self.qkv(normed), 3 * self.heads).chunk(3, dim=-3)
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v

    def output(self, attended: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(merge_heads(attended)))


class Block(nn.Module):
    """Pre-norm causal self-attention + MLP over the latents."""

    def __init__(self, config: PerceiverARConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.dim)
        self.attn = SelfAttention(config)
        self.mlp = MLP(config)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, cos, sin) -> torch.Tensor:
        q, k, v = self.attn.project(self.norm(x), cos, sin)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        x = x + self.attn.output(y)
        return x + self.mlp(x)


class PerceiverAR(nn.Module):
    def __init__(self, config: PerceiverARConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.cross = CrossAttention(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by depth.
        residual_std = 0.02 / math.sqrt(2 * (config.layers + 1))
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(param, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def rotary(self, positions: torch.Tensor, dtype: torch.dtype):
        """cos/sin tables for absolute positions [..., T]."""
        c = self.config
        return rotary_tables(positions, c.head_dim, c.rope_base, dtype)

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        positions_offset: int = 0,
        prefix_keep: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """tokens [B, n] (n <= N) at absolute positions offset.. -> logits [B, min(L, n), V].

        prefix_keep: keep only this many (random, order kept, same count per row) of the n - L
        prefix positions as cross-attention keys: prefix dropout for training.
        """
        batch, n = tokens.shape
        c = self.config
        if not 1 <= n <= c.context:
            raise ValueError(f"got {n} tokens; the model takes 1..{c.context}")
        n_latents = min(c.latents, n)
        n_prefix = n - n_latents
        x = self.drop(self.embed(tokens))
        normed = self.cross.norm(x)
        positions = torch.arange(n, device=tokens.device) + positions_offset
        dtype = x.dtype  # under autocast, apply_rotary casts the tables to the q/k dtype

        if prefix_keep is not None and 0 <= prefix_keep < n_prefix:
            kept = self._sample_prefix(batch, n_prefix, prefix_keep, tokens.device, generator)
            latent_index = torch.arange(n_prefix, n, device=tokens.device).expand(batch, -1)
            index = torch.cat((kept, latent_index), dim=1)  # [B, keep + L]
            kv_input = normed.gather(1, index.unsqueeze(-1).expand(-1, -1, c.dim))
            cos, sin = self.rotary(positions[index], dtype)
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
            n_keys_prefix = prefix_keep
        else:
            kv_input = normed
            cos, sin = self.rotary(positions, dtype)
            n_keys_prefix = n_prefix
        keys, values = self.cross.keys_values(kv_input, cos, sin)

        q_cos, q_sin = self.rotary(positions[n_prefix:], dtype)
        queries = self.cross.queries(normed[:, n_prefix:], q_cos, q_sin)
        # Latent i sits after every kept prefix key and sees latents 0..i.
        n_keys = n_keys_prefix + n_latents
        key_index = torch.arange(n_keys, device=tokens.device)
        mask = (
            key_index[None, :]
            <= n_keys_prefix + torch.arange(n_latents, device=tokens.device)[:, None]
        )
        p = c.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=mask, dropout_p=p
        )
        x = self.cross.finish(x[:, n_prefix:], attended)

        for block in self.blocks:
            x = block(x, q_cos, q_sin)
        return self.head(self.norm(x))

    @staticmethod
    def _sample_prefix(batch, n_prefix, keep, device, generator) -> torch.Tensor:
        """[B, keep] sorted random prefix indices (different per row, same count)."""
        where = generator.device if generator is not None else device  # drawn where it lives
        scores = torch.rand(batch, n_prefix, device=where, generator=generator).to(device)
        return scores.argsort(dim=1)[:, :keep].sort(dim=1).values
