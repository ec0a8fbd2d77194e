"""Training configuration: one TOML file with a [model] table (PerceiverARConfig) and a [train]
table (TrainConfig, with its [train.augment] sub-table).

    [model]
    context = 1024
    latents = 128
    dim = 256
    ...
    [train]
    steps = 3000
    batch_size = 16
    ...
    [train.augment]
    transpose = 3
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livegen.kernels.errors import LivegenError
from livegen.models.config import PerceiverARConfig
from livegen.training.augment import AugmentConfig


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 16  # global batch in sequences (split over ranks and accumulation)
    grad_accum: int = 1  # micro-batches per rank per step
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    prefix_keep: float = 1.0  # fraction of prefix positions kept (prefix dropout); 1 = all
    seed: int = 0
    eval_interval: int = 250
    eval_windows: int = 64  # validation windows per evaluation (spread over the split)
    checkpoint_interval: int = 250
    keep_checkpoints: int = 2
    log_interval: int = 10
    bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on CPU)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "eval_interval", "log_interval")
        for name in (*positive, "checkpoint_interval", "keep_checkpoints", "eval_windows"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LivegenError(f"[train].{name} must be a positive integer, got {value!r}")
        if not 0.0 < self.prefix_keep <= 1.0:
            raise LivegenError(f"[train].prefix_keep must be in (0, 1], got {self.prefix_keep}")
        if self.lr <= 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise LivegenError("[train].lr must be > 0 and min_lr_ratio in [0, 1]")
        if self.warmup_steps < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise LivegenError("[train] warmup_steps, grad_clip, weight_decay must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[train]") -> TrainConfig:
        data = dict(data)
        augment = _build(AugmentConfig, data.pop("augment", {}), f"{where}.augment")
        config = _build(cls, data, where, augment=augment)
        config.validate()
        return config


@dataclass
class RunConfig:
    model: PerceiverARConfig
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> RunConfig:
        unknown = sorted(set(data) - {"model", "train"})
        if unknown:
            raise LivegenError(f"{where}: unknown tables {unknown}; known: ['model', 'train']")
        try:
            model = PerceiverARConfig(**data.get("model", {}))
        except (TypeError, ValueError) as error:
            raise LivegenError(f"{where} [model]: {error}") from None
        return cls(model, TrainConfig.from_dict(data.get("train", {}), f"{where} [train]"))


def _build(cls: type, table: Any, where: str, **extra: Any) -> Any:
    if not isinstance(table, dict):
        raise LivegenError(f"{where}: expected a table")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise LivegenError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**table, **extra)
    except TypeError as error:
        raise LivegenError(f"{where}: {error}") from None


def load_run_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LivegenError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise LivegenError(f"{path}: cannot read: {error}") from None
    return RunConfig.from_dict(data, str(path))
