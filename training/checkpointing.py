"""Training checkpoints, written atomically so that a crash never leaves a broken latest one.

    RUN/checkpoints/step-000500/model/        config.json + model.safetensors (weights)
    RUN/checkpoints/step-000500/optimizer.pt  AdamW moments (tensors only: loads weights_only)
    RUN/checkpoints/step-000500/state.json    step, tokens seen, data order, Python/NumPy RNGs
    RUN/checkpoints/step-000500/rng.pt        torch (and CUDA) RNG states (dropout)
    RUN/checkpoints/latest                    the name of the newest complete checkpoint

A checkpoint is written into a temporary folder, flushed to disk, then renamed into place;
`latest` is replaced (also by rename) only after that. Renames are atomic on POSIX, so a
reader sees the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livegen.kernels.errors import LivegenError
from livegen.models.checkpoint import load_model, save_model
from livegen.models.perceiver_ar import PerceiverAR

CHECKPOINTS = "checkpoints"
LATEST = "latest"


@dataclass
class TrainingState:
    step: int = 0
    tokens_seen: int = 0  # target tokens trained on (the loss positions)
    epoch: int = 0
    position: int = 0
    val_nll: float | None = None


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rng_states() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    plain = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    return plain, tensors


def _set_rng_states(plain: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])


def save_checkpoint(
    run_dir: Path,
    model: PerceiverAR,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    keep: int = 2,
    metadata: dict[str, Any] | None = None,
    save_weights: Callable[..., Path] = save_model,
) -> Path:
    """Write a checkpoint of this step atomically; keep the newest `keep`; returns its folder.

    `save_weights(model, folder, metadata=...)` writes the model folder (the codec passes its
    own); `optimizer` is anything with a tensor-only state_dict().
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state.step:07d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_weights(model, tmp / "model", metadata=metadata)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    plain, tensors = _rng_states()
    torch.save(tensors, tmp / "rng.pt")
    record = {"state": state.__dict__, "rng": plain}
    (tmp / "state.json").write_text(json.dumps(record), encoding="utf-8")
    _fsync_tree(tmp)
    final = root / name
    if final.exists():  # the same step saved twice (e.g. Ctrl-C right after a save)
        shutil.rmtree(final)
    tmp.rename(final)
    _write_latest(root, name)
    _prune(root, keep)
    return final


def _write_latest(root: Path, name: str) -> None:
    tmp = root / f".{LATEST}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(root / LATEST)
    _fsync_dir(root)


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):  # left by a crash mid-write
        shutil.rmtree(stale, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None when it has none."""
    root = Path(run_dir) / CHECKPOINTS
    try:
        name = (root / LATEST).read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    if name and (root / name / "state.json").is_file():
        return root / name
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def require_checkpoint(run_dir: Path) -> Path:
    found = latest_checkpoint(run_dir)
    if found is None:
        raise LivegenError(f"{run_dir}: no checkpoint (train with `livegen-train ar` first)")
    return found


def load_checkpoint(
    folder: Path,
    model: PerceiverAR,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
    load_weights: Callable[..., Any] = load_model,
) -> TrainingState:
    """Load weights (and optimizer, RNGs) into existing objects; returns the training state."""
    loaded = load_weights(folder / "model", device=next(model.parameters()).device)
    if loaded.config != model.config:
        raise LivegenError(f"{folder}: the checkpoint's model config differs from this run's")
    model.load_state_dict(loaded.state_dict())
    if optimizer is not None:
        saved = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(saved)  # moves the moments to the parameters' device
    record = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if restore_rng:
        tensors = torch.load(folder / "rng.pt", map_location="cpu", weights_only=True)
        _set_rng_states(record["rng"], tensors)
    return TrainingState(**record["state"])


def read_state(folder: Path) -> TrainingState:
    record = json.loads((Path(folder) / "state.json").read_text(encoding="utf-8"))
    return TrainingState(**record["state"])
