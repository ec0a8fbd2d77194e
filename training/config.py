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

from livegen.kernels.errors import BadValueError, LivegenError
from livegen.kernels.values import (
    COUNT,
    FRACTION,
    MIDI_BYTE,
    NONNEGATIVE,
    NONNEGATIVE_INT,
    POSITIVE,
    SEED,
    Bound,
    check_fields,
)
from livegen.models.config import PerceiverARConfig
from livegen.training.augment import AugmentConfig

# What each [train] number may be (kernels/values.py: finite, of its kind, in range).
TRAIN_BOUNDS = {
    "steps": COUNT,
    "batch_size": COUNT,
    "grad_accum": COUNT,
    "lr": POSITIVE,  # finite; a huge one diverges, and training stops saying so
    "min_lr_ratio": Bound(0.0, 1.0),
    "warmup_steps": NONNEGATIVE_INT,
    "weight_decay": Bound(0.0, 10.0),
    "beta1": FRACTION,
    "beta2": FRACTION,
    "grad_clip": NONNEGATIVE,  # 0: no clipping
    "prefix_keep": Bound(0.0, 1.0, low_open=True),
    "seed": SEED,
    "eval_interval": COUNT,
    "eval_windows": COUNT,
    "checkpoint_interval": COUNT,
    "keep_checkpoints": COUNT,
    "log_interval": COUNT,
}
AUGMENT_BOUNDS = {
    "transpose": Bound(0, 24, integer=True),
    "stretch": FRACTION,
    "timing_jitter": Bound(0.0, 1.0),
    "velocity_offset": MIDI_BYTE,
    "velocity_jitter": Bound(0.0, 127.0),
}


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
        """LivegenError naming the first field that is not a finite number in its range."""
        try:
            check_fields(self, TRAIN_BOUNDS, "[train].")
            check_fields(self.augment, AUGMENT_BOUNDS, "[train.augment].")
        except BadValueError as error:
            raise LivegenError(str(error)) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "[train]") -> TrainConfig:
        data = dict(data)
        augment = build_section(AugmentConfig, data.pop("augment", {}), f"{where}.augment")
        config = build_section(cls, data, where, augment=augment)
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
        check_tables(data, where)
        model = build_model(PerceiverARConfig, data.get("model", {}), where)
        return cls(model, TrainConfig.from_dict(data.get("train", {}), f"{where} [train]"))


def check_tables(data: dict[str, Any], where: str) -> None:
    """A run config has a [model] and a [train] table, nothing else."""
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise LivegenError(f"{where}: unknown tables {unknown}; known: ['model', 'train']")


def build_model(cls: type, table: Any, where: str) -> Any:
    """The [model] table as `cls` (a model config dataclass that validates itself)."""
    if not isinstance(table, dict):
        raise LivegenError(f"{where} [model]: expected a table")
    known = {f.name for f in dataclasses.fields(cls)}
    if set(table) - known:
        raise LivegenError(f"{where} [model]: unknown keys {sorted(set(table) - known)}")
    try:
        return cls(**table)
    except (TypeError, ValueError) as error:
        raise LivegenError(f"{where} [model]: {error}") from None


def build_section(cls: type, table: Any, where: str, **extra: Any) -> Any:
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


def read_config(path: str | Path) -> dict[str, Any]:
    """A TOML config file's tables, or one clear error."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LivegenError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise LivegenError(f"{path}: cannot read: {error}") from None


def load_run_config(path: str | Path) -> RunConfig:
    return RunConfig.from_dict(read_config(path), str(path))
