"""The data order: seeded epochs of random crops, resumable from two numbers.

An epoch is one pass over a split's shards in windows of `length` tokens, starting at a random
offset (so crops differ from epoch to epoch), in a random order. Both come from (seed, epoch)
alone, and each window's augmentation from (seed, epoch, index), so the sampler's whole state
is (epoch, position): a checkpoint saves it, a resumed run continues the exact sequence, and
every rank of a distributed run can compute any sample of the global batch by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from livegen.kernels.vocab import PAD
from livegen.training.augment import AugmentConfig, augment_tokens, fit_length
from livegen.training.shards import TokenShards


@dataclass
class SamplerState:
    epoch: int = 0
    position: int = 0  # windows of this epoch already taken


@dataclass
class Sample:
    epoch: int
    index: int  # position in the epoch's order: names the sample for its augmentation seed
    shard: int
    start: int


class WindowSampler:
    def __init__(
        self,
        shards: TokenShards,
        length: int,
        seed: int,
        augment: AugmentConfig | None = None,
        pad: int = PAD,
    ) -> None:
        if shards.total_tokens == 0:
            raise ValueError(f"the {shards.split} split holds no tokens")
        self.shards = shards
        self.length = length  # tokens per sample: inputs + 1 shifted target
        self.seed = seed
        self.pad = pad  # fills a window past the end of a short split
        self.augment = augment or AugmentConfig(enabled=False)
        self.raw_length = int(np.ceil(length * self.augment.growth))
        self.state = SamplerState()
        self._cached_epoch = -1
        self._windows = np.zeros((0, 2), dtype=np.int64)

    def windows(self, epoch: int) -> np.ndarray:
        """[W, 2] (shard, start) of an epoch, in its order."""
        if epoch != self._cached_epoch:
            rng = np.random.default_rng([self.seed, epoch])
            offset = int(rng.integers(0, self.length))
            parts = []
            for shard, array in enumerate(self.shards.arrays):
                size = int(array.shape[0])
                last = size - self.raw_length
                starts = np.arange(offset, last + 1, self.length) if last >= offset else []
                if len(starts) == 0:  # a shard shorter than one crop: one padded window
                    starts = np.zeros(1, dtype=np.int64)
                parts.append(np.stack((np.full(len(starts), shard), starts), axis=1))
            windows = np.concatenate(parts).astype(np.int64)
            self._windows = windows[rng.permutation(len(windows))]
            self._cached_epoch = epoch
        return self._windows

    def take(self, count: int) -> list[Sample]:
        """The next `count` samples (crossing into the next epoch when one runs out)."""
        samples = []
        while len(samples) < count:
            windows = self.windows(self.state.epoch)
            if self.state.position >= len(windows):
                self.state = SamplerState(self.state.epoch + 1, 0)
                continue
            shard, start = windows[self.state.position]
            samples.append(Sample(self.state.epoch, self.state.position, int(shard), int(start)))
            self.state.position += 1
        return samples

    def tokens(self, sample: Sample) -> np.ndarray:
        """The sample's `length` token ids, augmented with its own seeded draws."""
        raw = self.shards.window(sample.shard, sample.start, self.raw_length)
        if self.augment.enabled:
            rng = np.random.default_rng([self.seed, sample.epoch, sample.index, 1])
            raw = augment_tokens(raw, rng, self.augment)
        return fit_length(raw, self.length, self.pad)

    def batch(self, samples: list[Sample]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.tokens(s) for s in samples]))


def eval_windows(shards: TokenShards, length: int, limit: int) -> list[Sample]:
    """Fixed, non-overlapping windows spread evenly over a split (at most `limit`)."""
    windows = []
    for shard, array in enumerate(shards.arrays):
        size = int(array.shape[0])
        starts = range(0, max(size - length, 0) + 1, length)
        windows.extend((shard, start) for start in starts)
    if len(windows) > limit:
        picks = np.linspace(0, len(windows) - 1, limit).round().astype(int)
        windows = [windows[i] for i in picks]
    return [Sample(0, i, shard, start) for i, (shard, start) in enumerate(windows)]
