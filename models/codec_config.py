"""The codec's shape, in one dataclass that codec files record as JSON.

A code frame is `hop` samples (16 ms at 24 kHz). Inside a frame the encoder looks at `fold`
analysis frames and the decoder writes `fold` synthesis frames of 2 * hop / fold samples each
(50% overlap), so the output is final one inner hop after the frame ends: the algorithmic
latency is hop + hop / fold samples (20 ms by default). See docs/CODEC.md for why these sizes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from livegen.kernels.errors import ModelFileError

QUANTIZERS = ("rvq", "argmax")


@dataclass
class CodecConfig:
    sample_rate: int = 24000
    hop: int = 384  # samples per code frame
    fold: int = 4  # inner analysis/synthesis frames per code frame
    analysis_window: int = 512  # causal analysis window of the encoder (past samples only)
    channels: int = 256
    encoder_depth: int = 5
    decoder_depth: int = 5
    kernel: int = 7  # causal depthwise kernel, in code frames
    mlp_ratio: float = 2.0
    latent_dim: int = 64
    quantizer: str = "rvq"  # "rvq" (residual VQ, EMA codebooks) or "argmax" (Dieleman 2018)
    levels: int = 8  # RVQ levels, or argmax groups: bits per frame = levels * log2(codebook)
    codebook_size: int = 1024
    code_dim: int = 0  # RVQ: > 0 looks codes up in this many l2-normalised dims
    ema_decay: float = 0.99
    dead_threshold: float = 0.05  # RVQ: restart a code whose EMA count falls below this
    kmeans_iters: int = 10
    min_levels: int = 2  # quantiser dropout draws levels from [min_levels, levels]
    level_dropout: float = 0.5  # probability that an example trains on fewer levels

    def __post_init__(self) -> None:
        self.validate()

    @property
    def inner_hop(self) -> int:
        return self.hop // self.fold

    @property
    def n_fft(self) -> int:
        return 2 * self.inner_hop

    @property
    def delay(self) -> int:
        """Output samples lag input samples by this much (the synthesis overlap)."""
        return self.n_fft - self.inner_hop

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def latency_ms(self) -> float:
        """A frame must be complete before it is encoded, and its last overlap needs the next
        frame: hop + delay samples from a sample going in to it coming out final."""
        return 1000.0 * (self.hop + self.delay) / self.sample_rate

    def kbps(self, levels: int | None = None) -> float:
        bits = (levels or self.levels) * (self.codebook_size - 1).bit_length()
        return bits * self.frame_rate / 1000.0

    def validate(self) -> None:
        """Raise ValueError naming the first field that makes no sense."""
        positive = (
            "sample_rate",
            "hop",
            "fold",
            "analysis_window",
            "channels",
            "kernel",
            "latent_dim",
            "levels",
            "codebook_size",
            "kmeans_iters",
            "min_levels",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("encoder_depth", "decoder_depth", "code_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.hop % self.fold:
            raise ValueError(f"hop ({self.hop}) must be a multiple of fold ({self.fold})")
        if self.analysis_window < self.inner_hop:
            raise ValueError("analysis_window must be at least hop / fold samples")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}")
        if self.codebook_size < 2:
            raise ValueError("codebook_size must be at least 2")
        if not self.min_levels <= self.levels:
            raise ValueError(f"min_levels ({self.min_levels}) must be <= levels ({self.levels})")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if not 0.0 <= self.level_dropout <= 1.0:
            raise ValueError(f"level_dropout must be in [0, 1], got {self.level_dropout}")
        if self.dead_threshold < 0 or self.mlp_ratio <= 0:
            raise ValueError("dead_threshold must be >= 0 and mlp_ratio > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> CodecConfig:
        if not isinstance(data, dict):
            raise ModelFileError("codec config: expected a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelFileError(f"codec config: unknown keys {unknown}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as error:
            raise ModelFileError(f"codec config: {error}") from None
