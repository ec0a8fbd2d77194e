"""Continuing audio with a Perceiver AR over codec tokens, offline.

The prompt's codec frames are prefilled into the streaming decoder, then the model writes
frame after frame, level by level. The grammar of the sequence is fixed: a level-k position
may only emit a level-k code, so every other id (the other levels' codes, the special ids) is
masked out of the logits before the sampling controls (temperature, top-k, top-p, min-p)
see them. With a seed, the result is the same on every run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from livegen.kernels.audio_vocab import AudioVocab
from livegen.models.sampling import SamplingParams, transform
from livegen.models.streaming import StreamingDecoder


def sample_level(
    logits: torch.Tensor,
    vocab: AudioVocab,
    level: int,
    params: SamplingParams,
    generator: torch.Generator | None = None,
) -> int:
    """One id of level `level`'s codes, drawn under the sampling controls.

    The mask is a slice: only the level's C logits are kept (every other id is out), so the
    controls' sorting works on C values, not on the whole vocabulary."""
    lo, hi = vocab.level_range(level)
    part = logits[lo:hi]
    allowed = torch.ones(hi - lo, dtype=torch.bool)
    x = transform(part, allowed, params)
    if not torch.isfinite(x).any():  # the truncations left nothing: take the best code
        return lo + int(part.float().argmax())
    return lo + int(torch.multinomial(torch.softmax(x, dim=-1), 1, generator=generator))


@dataclass
class AudioContinuation:
    prompt_codes: np.ndarray  # [P, K]: the prompt's frames the model was given
    codes: np.ndarray  # [G, K]: the frames it wrote
    elapsed: float  # seconds of compute, prefill included
    prefill_seconds: float

    @property
    def tokens(self) -> int:
        return int(self.codes.size)


def prompt_ids(vocab: AudioVocab, codes: np.ndarray, context: int) -> list[int]:
    """BEGIN + the prompt's ids when they fit the context; else its last whole frames that do
    (training crops start anywhere in a piece, so a prompt without BEGIN is nothing new)."""
    ids = vocab.flatten(codes).tolist()
    if len(ids) + 1 <= context:
        return [vocab.begin, *ids]
    keep = (context - 1) // vocab.levels * vocab.levels
    return ids[len(ids) - keep :]


@torch.no_grad()
def continue_codes(
    decoder: StreamingDecoder,
    prompt_codes: np.ndarray,
    frames: int,
    params: SamplingParams,
    *,
    seed: int = 0,
) -> AudioContinuation:
    """Prefill the prompt's frames [P, >= K], then write `frames` new frames."""
    config = decoder.config
    vocab = config.audio_vocab()
    prompt_codes = np.asarray(prompt_codes)[:, : vocab.levels]
    generator = torch.Generator().manual_seed(seed)
    decoder.reset()
    t0 = time.perf_counter()
    logits = decoder.append(prompt_ids(vocab, prompt_codes, config.context))
    prefill = time.perf_counter() - t0
    written: list[int] = []
    for n in range(frames * vocab.levels):
        token = sample_level(logits, vocab, n % vocab.levels, params, generator)
        written.append(token)
        logits = decoder.append([token])
    codes = vocab.unflatten(np.asarray(written, dtype=np.int64))
    return AudioContinuation(prompt_codes, codes, time.perf_counter() - t0, prefill)
