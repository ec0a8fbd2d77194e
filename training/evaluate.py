"""Held-out negative log-likelihood, in nats per token, two ways.

1. As in training: windows of N + 1 tokens, the loss on the last L positions (each predicted
   token sees at least N - L tokens of context). This is the figure runs are compared by.
2. Through the streaming decoder, one token at a time from an empty cache, as the live jam
   runs the model. Its windowing (models/streaming.py) gives position p the context of the
   window that owns it, so the figure is computed a second time with parallel forward passes
   over exactly those windows; the two must agree, which checks the decoder end to end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from livegen.kernels.vocab import PAD
from livegen.models.perceiver_ar import PerceiverAR
from livegen.training.sampler import Sample, eval_windows
from livegen.training.shards import TokenShards

STREAM_TOLERANCE = 1e-3  # nats/token between the streamed and the parallel figure


def latent_loss(
    logits: torch.Tensor, window: torch.Tensor, pad: int = PAD
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of NLL, number of targets) of logits [B, L', V] for window [B, n + 1].

    Logits are for the last L' input positions; their targets are the last L' tokens. PAD
    targets (short windows) do not count (`pad`: the model's own pad id).
    """
    targets = window[:, -logits.shape[1] :]
    total = F.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), ignore_index=pad, reduction="sum"
    )
    return total, (targets != pad).sum()


@torch.no_grad()
def window_nll(
    model: PerceiverAR,
    shards: TokenShards,
    windows: list[Sample],
    batch_size: int = 8,
    autocast: bool = False,
) -> tuple[float, int]:
    """(sum of NLL, targets) over the given windows, without augmentation or prefix dropout."""
    length = model.config.context + 1
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    rows = [shards.window(w.shard, w.start, length) for w in windows]
    # Full windows go in batches; a split shorter than one window goes in as it is (a
    # shorter input, not padding, so its last positions are real targets).
    full = [r for r in rows if r.shape[0] == length]
    batches = [full[i : i + batch_size] for i in range(0, len(full), batch_size)]
    batches += [[r] for r in rows if 1 < r.shape[0] < length]
    for batch in batches:
        window = torch.from_numpy(np.stack(batch)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(window[:, :-1])
        loss, n = latent_loss(logits, window, model.config.pad_id)
        total += float(loss)
        count += int(n)
    model.train(was_training)
    return total, count


def split_nll(model: PerceiverAR, shards: TokenShards, limit: int = 256, batch_size: int = 8):
    """Mean NLL (nats/token) of a split over at most `limit` fixed windows, and the count."""
    windows = eval_windows(shards, model.config.context + 1, limit)
    total, count = window_nll(model, shards, windows, batch_size)
    return total / max(count, 1), count


@dataclass
class StreamResult:
    nll: float  # through the streaming decoder
    reference_nll: float  # parallel forward passes over the decoder's windows
    max_logit_diff: float
    tokens: int

    @property
    def agrees(self) -> bool:
        return abs(self.nll - self.reference_nll) <= STREAM_TOLERANCE


def owner_window(p: int, latents: int, stride: int) -> int:
    """The window start w of the decoder window whose logits position p gets."""
    k = max(0, -(-(p - latents + 1) // stride))
    return k * stride


@torch.no_grad()
def reference_logits(model: PerceiverAR, tokens: torch.Tensor, refill: int) -> torch.Tensor:
    """Logits [T, V] at every position of tokens [T], as the streaming decoder windows them."""
    c = model.config
    N, L, T = c.context, c.latents, tokens.shape[0]
    stride = L - refill + 1
    out = torch.full((T, c.vocab_size), float("nan"))
    owners: dict[int, list[int]] = {}
    for p in range(T):
        owners.setdefault(owner_window(p, L, stride), []).append(p)
    for w, owned in owners.items():
        lo = max(0, w - (N - L))
        chunk = tokens[lo : w + L]
        # Past the end, pad: causal masks keep later positions out of earlier logits.
        if chunk.shape[0] < w + L - lo:
            pad = torch.full((w + L - lo - chunk.shape[0],), c.pad_id, dtype=tokens.dtype)
            chunk = torch.cat((chunk, pad))
        on = chunk.to(next(model.parameters()).device)[None]  # the model may be on a GPU
        logits = model(on, positions_offset=lo)[0].float().cpu()  # [L, V] for [w, w + L)
        out[owned] = logits[torch.tensor(owned) - w]
    return out


@torch.no_grad()
def stream_nll(model: PerceiverAR, tokens: np.ndarray, refill: int | None = None) -> StreamResult:
    """NLL of tokens[1:] given the prefixes, decoded one token at a time, and its check."""
    from livegen.models.streaming import StreamingDecoder

    model = model.eval()
    decoder = StreamingDecoder(model, refill=refill)
    ids = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
    streamed = torch.stack([decoder.append([int(t)]).clone() for t in ids[:-1]])
    reference = reference_logits(model, ids[:-1], decoder.R)
    targets = ids[1:]
    keep = targets != model.config.pad_id
    nll = F.cross_entropy(streamed[keep], targets[keep]).item()
    ref = F.cross_entropy(reference[keep], targets[keep]).item()
    diff = float((streamed - reference).abs().max())
    return StreamResult(nll, ref, diff, int(keep.sum()))


def stream_sequence(shards: TokenShards, length: int) -> np.ndarray:
    """The first `length` tokens of a split (pieces start with BEGIN, as a jam does)."""
    return shards.window(0, 0, length)


def perplexity(nll: float) -> float:
    return math.exp(nll)
