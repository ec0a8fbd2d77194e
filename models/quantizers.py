"""The codec's two quantisers, with one interface.

- ResidualVQ: each level quantises what the levels before it left over. Codebooks learn by
  exponential moving averages (not gradients), start from k-means on the first batch, and a
  code whose EMA count decays below a threshold is restarted on a vector of the current batch,
  with its EMA statistics reset to that vector (stale statistics would drag it straight back).
  Optionally each level looks up in a low-dimensional l2-normalised space (as DAC does).
- ArgmaxQuantizer: the argmax autoencoder of Dieleman et al. 2018: ReLU, divisive
  normalisation onto the simplex, argmax with a straight-through gradient, and a diversity loss
  that pushes the batch-mean code distribution towards uniform. Here in `levels` parallel
  groups, so both quantisers spend the same bits per frame.

Both take z [B, T, D] and an optional per-example level count (quantiser dropout: levels past
it contribute nothing), and return the quantised z, the codes [B, T, levels] and an auxiliary
loss. Both are per frame, so they stream trivially.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from livegen.models.codec_config import CodecConfig


class QuantizerOutput(NamedTuple):
    quantized: torch.Tensor  # [B, T, D], straight-through
    codes: torch.Tensor  # [B, T, levels] int64
    loss: torch.Tensor  # commitment (RVQ) or diversity (argmax) loss


def level_mask(levels: torch.Tensor | None, n: int, batch: int, device) -> torch.Tensor:
    """[B, n] bools: which levels each example uses (all when levels is None)."""
    if levels is None:
        return torch.ones(batch, n, dtype=torch.bool, device=device)
    return torch.arange(n, device=device)[None, :] < levels.to(device)[:, None]


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def _broadcast(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(tensor, 0)
    return tensor


def _kmeans_plus_plus(vectors: torch.Tensor, k: int) -> torch.Tensor:
    """Seeds spread over the data (Arthur & Vassilvitskii 2007); past the distinct points,
    repeated points with a little jitter."""
    centroids = torch.empty(k, vectors.shape[1], device=vectors.device)
    centroids[0] = vectors[torch.randint(len(vectors), (1,))]
    closest = (vectors - centroids[0]).pow(2).sum(1)
    for i in range(1, k):
        total = closest.sum()
        if total <= 0:
            picks = torch.randint(len(vectors), (k - i,), device=vectors.device)
            jitter = torch.randn(k - i, vectors.shape[1], device=vectors.device)
            centroids[i:] = vectors[picks] + 1e-3 * (vectors.std() + 1e-6) * jitter
            break
        pick = torch.multinomial(closest / total, 1)
        centroids[i] = vectors[pick]
        closest = torch.minimum(closest, (vectors - centroids[i]).pow(2).sum(1))
    return centroids


def kmeans(vectors: torch.Tensor, k: int, iters: int, normalize: bool) -> torch.Tensor:
    """k centroids of vectors [N, d]: k-means++ seeds, then Lloyd's iterations."""
    centroids = _kmeans_plus_plus(vectors, k)
    for _ in range(iters):
        nearest = torch.cdist(vectors, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, nearest, vectors)
        counts = torch.bincount(nearest, minlength=k).to(vectors.dtype)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return F.normalize(centroids, dim=-1) if normalize else centroids


def _draw(x: torch.Tensor, n: int, like: torch.Tensor) -> torch.Tensor:
    """n vectors of x at random (noise shaped like the codebook when x is empty); every rank
    calls this the same number of times, so the broadcasts around it stay paired."""
    if len(x) == 0:
        return torch.randn(n, like.shape[1], device=like.device) * like.std()
    return x[torch.randint(len(x), (n,), device=x.device)].clone()


class EMACodebook(nn.Module):
    """One RVQ level: a codebook updated by EMA, k-means initialised, with dead-code restarts."""

    def __init__(self, dim: int, size: int, config: CodecConfig) -> None:
        super().__init__()
        self.size, self.decay = size, config.ema_decay
        self.threshold, self.kmeans_iters = config.dead_threshold, config.kmeans_iters
        self.normalize = config.code_dim > 0
        self.register_buffer("embed", torch.randn(size, dim) * 0.1)
        self.register_buffer("embed_avg", self.embed.clone())
        self.register_buffer("cluster_size", torch.ones(size))
        self.register_buffer("initialized", torch.zeros(()))  # float: model files hold floats

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Indices of the nearest codes for x [N, d]."""
        distance = (
            x.pow(2).sum(1, keepdim=True)
            - 2 * x @ self.embed.t()
            + self.embed.pow(2).sum(1)[None, :]
        )
        return distance.argmin(dim=1)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """EMA step on the active vectors x [N, d] and their codes; then restart dead codes."""
        counts = torch.bincount(codes, minlength=self.size).to(x.dtype)
        sums = torch.zeros_like(self.embed).index_add_(0, codes, x)
        _all_reduce(counts)
        _all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (total + self.size * 1e-5) * total
        self._set_embed(self.embed_avg / smoothed[:, None])
        self._restart(x)

    def _set_embed(self, embed: torch.Tensor) -> None:
        self.embed.copy_(F.normalize(embed, dim=-1) if self.normalize else embed)

    def _restart(self, x: torch.Tensor) -> None:
        dead = _broadcast((self.cluster_size < self.threshold).float()).bool()
        if not bool(dead.any()):
            return
        fresh = _broadcast(_draw(x, int(dead.sum()), self.embed))
        self.embed[dead] = F.normalize(fresh, dim=-1) if self.normalize else fresh
        # Reset the statistics too: an EMA mean still holding the old centroid would pull the
        # restarted code back to where nothing used it.
        self.embed_avg[dead] = self.embed[dead]
        self.cluster_size[dead] = 1.0

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        if len(x) == 0:  # no example uses this level in this batch (quantiser dropout)
            x = _draw(x, self.size, self.embed)
        centroids = _broadcast(kmeans(x, self.size, self.kmeans_iters, self.normalize))
        self.embed.copy_(centroids)
        self.embed_avg.copy_(centroids)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(1.0)


class ResidualVQ(nn.Module):
    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.levels = config.levels
        dim = config.code_dim or config.latent_dim
        self.codebooks = nn.ModuleList(
            EMACodebook(dim, config.codebook_size, config) for _ in range(config.levels)
        )
        self.project = config.code_dim > 0
        if self.project:
            self.inputs = nn.ModuleList(
                nn.Linear(config.latent_dim, dim) for _ in range(config.levels)
            )
            self.outputs = nn.ModuleList(
                nn.Linear(dim, config.latent_dim) for _ in range(config.levels)
            )

    def _lookup_space(self, level: int, residual: torch.Tensor) -> torch.Tensor:
        if not self.project:
            return residual
        return F.normalize(self.inputs[level](residual), dim=-1)

    def _out(self, level: int, q: torch.Tensor) -> torch.Tensor:
        return self.outputs[level](q) if self.project else q

    def forward(self, z: torch.Tensor, levels: torch.Tensor | None = None) -> QuantizerOutput:
        B, T, _ = z.shape
        mask = level_mask(levels, self.levels, B, z.device)  # [B, L]
        residual, quantized = z, torch.zeros_like(z)
        codes, loss = [], z.new_zeros(())
        for level, book in enumerate(self.codebooks):
            x = self._lookup_space(level, residual)
            flat = x.reshape(B * T, -1)
            active = mask[:, level].repeat_interleave(T)
            if self.training and not bool(book.initialized):
                book.initialize(flat[active].detach())
            idx = book.nearest(flat.detach())
            q = book.embed[idx].view_as(x)
            if self.training:
                book.update(flat[active].detach(), idx[active])
            keep = mask[:, level, None, None].to(z.dtype)
            if bool(mask[:, level].any()):
                err = (x - q.detach()).pow(2).mean(-1) * keep[..., 0]
                loss = loss + err.sum() / (keep.sum() * T)
            out = self._out(level, x + (q - x).detach())
            quantized = quantized + out * keep
            residual = residual - out * keep
            codes.append(idx.view(B, T))
        return QuantizerOutput(quantized, torch.stack(codes, dim=-1), loss)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T, k] (k <= levels: the first k levels) -> quantised z [B, T, D]."""
        out = None
        for level in range(codes.shape[-1]):
            part = self._out(level, self.codebooks[level].embed[codes[..., level]])
            out = part if out is None else out + part
        return out

    def encode(self, z: torch.Tensor, levels: int) -> torch.Tensor:
        """Codes of the first `levels` levels [B, T, levels] (no training updates)."""
        B, T, _ = z.shape
        residual, codes = z, []
        for level in range(levels):
            x = self._lookup_space(level, residual)
            idx = self.codebooks[level].nearest(x.reshape(B * T, -1)).view(B, T)
            residual = residual - self._out(level, self.codebooks[level].embed[idx])
            codes.append(idx)
        return torch.stack(codes, dim=-1)


class ArgmaxQuantizer(nn.Module):
    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.levels, self.size = config.levels, config.codebook_size
        self.logits = nn.Linear(config.latent_dim, config.levels * config.codebook_size)
        self.embed = nn.Parameter(
            torch.randn(config.levels, config.codebook_size, config.latent_dim) * 0.1
        )

    def _simplex(self, z: torch.Tensor) -> torch.Tensor:
        B, T, _ = z.shape
        h = F.relu(self.logits(z)).view(B, T, self.levels, self.size)
        return h / (h.sum(-1, keepdim=True) + 1e-6)  # divisive normalisation

    def forward(self, z: torch.Tensor, levels: torch.Tensor | None = None) -> QuantizerOutput:
        B, T, _ = z.shape
        p = self._simplex(z)
        codes = p.argmax(dim=-1)  # [B, T, G]
        hard = F.one_hot(codes, self.size).to(p.dtype)
        st = hard + p - p.detach()  # forward: one-hot; backward: the simplex vector
        mask = level_mask(levels, self.levels, B, z.device).to(z.dtype)
        st = st * mask[:, None, :, None]
        quantized = torch.einsum("btgk,gkd->btd", st, self.embed)
        # Diversity: K * ||batch-mean of p||^2 per group is 1 when codes are used uniformly
        # and K when everything maps to one code.
        mean = p.reshape(B * T, self.levels, self.size).mean(0)
        diversity = (self.size * mean.pow(2).sum(-1)).mean()
        return QuantizerOutput(quantized, codes, diversity)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        out = None
        for group in range(codes.shape[-1]):
            part = self.embed[group][codes[..., group]]
            out = part if out is None else out + part
        return out

    def encode(self, z: torch.Tensor, levels: int) -> torch.Tensor:
        return self._simplex(z).argmax(dim=-1)[..., :levels]


def build_quantizer(config: CodecConfig) -> nn.Module:
    return ResidualVQ(config) if config.quantizer == "rvq" else ArgmaxQuantizer(config)
