"""The token language of audio models: codec codes, the levels of a frame flattened.

A codec frame is K codes, one per residual level (coarse to fine). The sequence lists frames
in time order and, within a frame, levels 0, 1, ..., K-1: each level is predicted after the
coarser levels of its own frame, which is the order in which the residual quantiser made them
(level k codes what levels 0..k-1 left over). Level k's code c is the id k * C + c (C codes
per level), so a model never has to guess which level an id belongs to, and the ids after the
K * C codes are the special ids, in the MIDI vocabulary's order (pad, begin, end).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioVocab:
    levels: int  # K: codes per frame
    codebook_size: int  # C: codes per level

    def __post_init__(self) -> None:
        for name in ("levels", "codebook_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.size > np.iinfo(np.int16).max:
            raise ValueError(f"{self.levels} x {self.codebook_size} codes do not fit int16 shards")

    @property
    def codes(self) -> int:
        return self.levels * self.codebook_size

    @property
    def pad(self) -> int:
        return self.codes

    @property
    def begin(self) -> int:
        return self.codes + 1

    @property
    def end(self) -> int:
        return self.codes + 2

    @property
    def size(self) -> int:
        return self.codes + 3

    def flatten(self, codes: np.ndarray) -> np.ndarray:
        """codes [T, >= K] (one row per frame) -> ids [T * K], frame by frame, level by level."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] < self.levels:
            raise ValueError(f"codes must be [frames, >= {self.levels}], got {codes.shape}")
        kept = codes[:, : self.levels].astype(np.int64)
        if kept.size and (kept.min() < 0 or kept.max() >= self.codebook_size):
            raise ValueError(f"codes must be in 0..{self.codebook_size - 1}")
        offsets = np.arange(self.levels, dtype=np.int64) * self.codebook_size
        return (kept + offsets).reshape(-1)

    def unflatten(self, ids: np.ndarray) -> np.ndarray:
        """ids -> codes [T, K]: special ids are dropped; an unfinished last frame is dropped;
        a code at the wrong level (never sampled under the level mask) ends the frames."""
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[ids < self.codes]
        frames = len(ids) // self.levels
        grid = ids[: frames * self.levels].reshape(frames, self.levels)
        expected = np.arange(self.levels) * self.codebook_size
        ok = np.all((grid - expected >= 0) & (grid - expected < self.codebook_size), axis=1)
        good = frames if ok.all() else int(np.argmin(ok))
        return (grid[:good] - expected).astype(np.int64)

    def level_of(self, token: int) -> int:
        """The level of a code id; -1 for a special id."""
        return token // self.codebook_size if 0 <= token < self.codes else -1

    def next_level(self, previous: int) -> int:
        """The level the token after `previous` must have (after BEGIN or any special: 0)."""
        level = self.level_of(previous)
        return 0 if level < 0 else (level + 1) % self.levels

    def level_range(self, level: int) -> tuple[int, int]:
        """[lo, hi) of the ids a level-`level` position may emit."""
        if not 0 <= level < self.levels:
            raise ValueError(f"level must be in 0..{self.levels - 1}, got {level}")
        return level * self.codebook_size, (level + 1) * self.codebook_size
