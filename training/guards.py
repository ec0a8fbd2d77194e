"""What keeps a training run from destroying itself or another run without a word.

- A new run never lands in a folder that already holds one (its log, run.json and
  checkpoints would be overwritten): `--resume` continues it, or choose another --out.
- `--resume` with different [train] settings applies them, says so, and records each change
  (step, old, new) in run.json, so the run's record stays true.
- A step whose loss or gradient norm is not finite is not applied, and training stops with
  a message naming the last checkpoint (always one of finite weights: a checkpoint is never
  written from non-finite weights, so pruning can never remove the last good one).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from livegen.kernels.atomic_write import write_text
from livegen.kernels.errors import LivegenError

RUN_FILES = ("run.json", "log.csv", "checkpoints")


class DivergedError(LivegenError):
    """Training produced a non-finite loss or gradient."""


def check_new_run(run_dir: Path) -> None:
    """LivegenError if run_dir already holds a run (without --resume it would be destroyed)."""
    found = [name for name in RUN_FILES if (Path(run_dir) / name).exists()]
    if found:
        raise LivegenError(
            f"{run_dir}: already holds a training run ({', '.join(found)}); --resume continues "
            "it, or give --out a new folder (nothing was changed)"
        )


def record_resume_changes(run_dir: Path, run_file: str, new_train: dict[str, Any], step: int):
    """Compare the run's recorded [train] settings with this invocation's; record and return
    the changes as lines ('lr 0.001 -> 0.0005')."""
    path = Path(run_dir) / run_file
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # no readable record to compare with (an old run): nothing to say
    old_train = info.get("config", {}).get("train", {})
    changed = {
        key: [old_train.get(key), value]
        for key, value in new_train.items()
        if key in old_train and old_train[key] != value
    }
    if not changed:
        return []
    info.setdefault("changes", []).append({"step": step, "train": changed})
    info.setdefault("config", {})["train"] = new_train
    write_text(path, json.dumps(info, indent=2) + "\n")
    return [f"{key} {old} -> {new}" for key, (old, new) in changed.items()]


def apply_optimizer_settings(optimizer: torch.optim.Optimizer, train: Any) -> None:
    """Loading an optimizer's state restores the saved betas and weight decay; put this
    run's settings back, so a change on --resume really applies (lr is set every step)."""
    for group in optimizer.param_groups:
        group["betas"] = (train.beta1, train.beta2)
    optimizer.param_groups[0]["weight_decay"] = train.weight_decay  # make_optimizer: decay first


def step_is_finite(loss: float, grad_norm: float) -> bool:
    return math.isfinite(loss) and math.isfinite(grad_norm)


def weights_are_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def diverged(step: int, loss: float, grad_norm: float, checkpoint: Path | None) -> DivergedError:
    kept = (
        f"the last checkpoint, {checkpoint}, holds finite weights"
        if checkpoint is not None
        else "no checkpoint was saved yet"
    )
    return DivergedError(
        f"training diverged at step {step}: loss {loss}, gradient norm {grad_norm}; that step "
        f"was not applied and training stopped; {kept}: lower [train].lr or set "
        "[train].grad_clip, then --resume"
    )
