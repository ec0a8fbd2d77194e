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

from livegen.kernels.atomic_write import reason, write_text
from livegen.kernels.errors import LivegenError, ModelFileError, WriteError
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
    Non-finite weights are refused (DivergedError) before anything is written or pruned, so
    the newest checkpoint on disk always holds finite weights. A failed write (disk full)
    removes its temporary folder and leaves the previous checkpoints as they were."""
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise LivegenError(
            f"{run_dir}: not saving step {state.step}: the weights are not finite (training "
            "diverged); the earlier checkpoints are kept"
        )
    root = Path(run_dir) / CHECKPOINTS
    name = f"step-{state.step:07d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_checkpoint(tmp, model, optimizer, state, metadata, save_weights)
        final = root / name
        if final.exists():  # the same step saved twice (e.g. Ctrl-C right after a save)
            shutil.rmtree(final)
        tmp.rename(final)
        _write_latest(root, name)
    except (OSError, LivegenError) as error:
        shutil.rmtree(tmp, ignore_errors=True)
        why = reason(error) if isinstance(error, OSError) else str(error)
        raise WriteError(
            f"{root}: checkpoint of step {state.step} not saved ({why}); the earlier "
            "checkpoints are intact"
        ) from None
    _prune(root, keep)
    return final


def _write_checkpoint(
    tmp: Path, model, optimizer, state: TrainingState, metadata, save_weights
) -> None:  # noqa: ANN001, E501
    save_weights(model, tmp / "model", metadata=metadata)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    plain, tensors = _rng_states()
    torch.save(tensors, tmp / "rng.pt")
    record = {"state": state.__dict__, "rng": plain}
    (tmp / "state.json").write_text(json.dumps(record), encoding="utf-8")
    _fsync_tree(tmp)


def _write_latest(root: Path, name: str) -> None:
    write_text(root / LATEST, name + "\n")  # synced, renamed, the folder synced


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


def previous_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint of the same run older than `folder`."""
    folder = Path(folder)
    older = sorted(
        p
        for p in folder.parent.glob("step-*")
        if p.name < folder.name and (p / "state.json").is_file()
    )
    return older[-1] if older else None


def damaged(path: Path, error: object) -> LivegenError:
    """The error for a checkpoint file that cannot be read: which file, and where to go."""
    folder = path.parent
    previous = previous_checkpoint(folder)
    if previous is None:
        advice = "no earlier checkpoint remains; the run must start again"
    else:
        advice = (
            f"the previous checkpoint is {previous}: move {folder.name} out of "
            f"{folder.parent} and --resume again to continue from it"
        )
    return LivegenError(f"{path}: damaged checkpoint file ({error}); {advice}")


def _load_tensors(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise damaged(path, "missing") from None
    except Exception as error:  # a corrupt archive or pickle raises almost anything
        raise damaged(path, f"not a readable torch file: {type(error).__name__}") from None


def _read_record(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "state.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        TrainingState(**record["state"])
        return record
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise damaged(path, f"{type(error).__name__}: {error}") from None


def load_checkpoint(
    folder: Path,
    model: PerceiverAR,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
    load_weights: Callable[..., Any] = load_model,
) -> TrainingState:
    """Load weights (and optimizer, RNGs) into existing objects; returns the training state.
    A damaged file is a LivegenError naming it and the previous checkpoint."""
    folder = Path(folder)
    record = _read_record(folder)
    try:
        loaded = load_weights(folder / "model", device=next(model.parameters()).device)
    except ModelFileError as error:
        raise damaged(folder / "model", error) from None
    if loaded.config != model.config:
        raise LivegenError(f"{folder}: the checkpoint's model config differs from this run's")
    model.load_state_dict(loaded.state_dict())
    if optimizer is not None:
        saved = _load_tensors(folder / "optimizer.pt")
        try:
            optimizer.load_state_dict(saved)  # moves the moments to the parameters' device
        except (ValueError, KeyError, TypeError, RuntimeError) as error:
            raise damaged(folder / "optimizer.pt", error) from None
    if restore_rng:
        tensors = _load_tensors(folder / "rng.pt")
        try:
            _set_rng_states(record["rng"], tensors)
        except (ValueError, KeyError, TypeError, RuntimeError) as error:
            raise damaged(folder / "rng.pt", error) from None
    return TrainingState(**record["state"])


def read_state(folder: Path) -> TrainingState:
    return TrainingState(**_read_record(Path(folder))["state"])
