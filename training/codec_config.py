"""Configuration of `livegen-train codec`: one TOML file with a [model] table (CodecConfig) and
a [train] table (CodecTrainConfig, with [train.loss] and [train.data] sub-tables).

    [model]
    quantizer = "rvq"
    levels = 8
    [train]
    steps = 20000
    batch_size = 16
    [train.loss]
    mel = 1.0
    adversarial = false
    [train.data]
    programs = [0, 4, 24, 40, 48, 56, 73]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livegen.kernels.errors import LivegenError
from livegen.models.codec_config import CodecConfig
from livegen.training.config import build_model, build_section, check_tables, read_config

# General MIDI programs that sound different from each other: pianos, organ, guitars, bass,
# strings, brass, reeds, flute, synth lead and pad.
DEFAULT_PROGRAMS = [0, 1, 4, 6, 11, 19, 24, 25, 32, 40, 42, 48, 52, 56, 61, 65, 68, 71, 73, 80, 89]


@dataclass
class LossConfig:
    mel: float = 1.0  # multi-scale log-mel L1
    stft: float = 1.0  # multi-resolution STFT (spectral convergence + log magnitude)
    waveform: float = 0.1  # L1 on samples
    commitment: float = 0.25  # RVQ: encoder towards its codes
    diversity: float = 0.1  # argmax: batch-mean code distribution towards uniform
    adversarial: bool = False  # MPD + multi-scale STFT discriminators (meant for a GPU)
    adversarial_start: int = 0  # step at which the adversarial phase begins
    adversarial_weight: float = 1.0
    feature_matching: float = 2.0
    freeze_encoder: bool = True  # adversarial phase: train the decoder only (RAVE's fix)
    discriminator_lr: float = 2e-4


@dataclass
class DataConfig:
    segment_seconds: float = 1.0
    preroll_seconds: float = 0.5  # MIDI: rendered and dropped, so notes sound as in the piece
    programs: list[int] = field(default_factory=lambda: list(DEFAULT_PROGRAMS))
    transpose: int = 3
    stretch: float = 0.05
    gain_db: float = 6.0  # random level change, +- dB, uniform
    val_fraction: float = 0.05  # files held out (by name hash) for the validation figure
    val_segments: int = 16
    midi_weight: float = 0.5  # with both audio and MIDI: the share of MIDI segments
    cache_audio: bool = False  # keep audio files in memory once read (fast crops on a GPU box)


@dataclass
class CodecTrainConfig:
    steps: int = 20000
    batch_size: int = 16
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.0
    beta1: float = 0.8
    beta2: float = 0.99
    grad_clip: float = 1.0
    seed: int = 0
    eval_interval: int = 250
    checkpoint_interval: int = 100
    keep_checkpoints: int = 2
    log_interval: int = 10
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> None:
        positive = ("steps", "batch_size", "eval_interval", "checkpoint_interval")
        for name in (*positive, "keep_checkpoints", "log_interval"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LivegenError(f"[train].{name} must be a positive integer, got {value!r}")
        if self.lr <= 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise LivegenError("[train].lr must be > 0 and min_lr_ratio in [0, 1]")
        if self.warmup_steps < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise LivegenError("[train] warmup_steps, grad_clip, weight_decay must be >= 0")
        d = self.data
        if not 0.05 <= d.segment_seconds <= 60 or not 0 <= d.preroll_seconds <= 10:
            raise LivegenError(
                "[train.data] segment_seconds must be in [0.05, 60], preroll in [0, 10]"
            )
        if not d.programs or any(not 0 <= p <= 127 for p in d.programs):
            raise LivegenError("[train.data].programs must be General MIDI programs 0..127")
        if not 0 <= d.val_fraction < 1 or not 0 <= d.midi_weight <= 1 or d.val_segments < 1:
            raise LivegenError(
                "[train.data] val_fraction, midi_weight in [0, 1); val_segments >= 1"
            )
        if any(getattr(self.loss, n) < 0 for n in ("mel", "stft", "waveform", "commitment")):
            raise LivegenError("[train.loss] weights must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[train]") -> CodecTrainConfig:
        data = dict(data)
        loss = build_section(LossConfig, data.pop("loss", {}), f"{where}.loss")
        sources = build_section(DataConfig, data.pop("data", {}), f"{where}.data")
        config = build_section(cls, data, where, loss=loss, data=sources)
        config.validate()
        return config


@dataclass
class CodecRunConfig:
    model: CodecConfig
    train: CodecTrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> CodecRunConfig:
        check_tables(data, where)
        model = build_model(CodecConfig, data.get("model", {}), where)
        return cls(model, CodecTrainConfig.from_dict(data.get("train", {}), f"{where} [train]"))


def load_codec_run_config(path: str | Path) -> CodecRunConfig:
    return CodecRunConfig.from_dict(read_config(path), str(path))
