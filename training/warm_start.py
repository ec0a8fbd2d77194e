"""Warm starts: begin a training run from weights that already exist instead of at random.

`livegen-train ar --init SOURCE` and `livegen-train finetune --preset P` both go through here.
SOURCE is a preset (a shipped name, a user preset's name or a .toml path), a run folder (its
latest checkpoint) or a model folder (config.json + model.safetensors).

Only the weights are taken: the optimizer, the step count and the learning-rate schedule start
fresh, as a new run's do. The weights' shapes do not depend on the context (N), the number of
latents (L) or dropout, so a run may change those (e.g. a longer context from the same
weights); everything that shapes a weight, or what a token or position means, must match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livegen.kernels.errors import LivegenError
from livegen.models.checkpoint import CONFIG_FILE, load_config, load_model
from livegen.models.config import PerceiverARConfig
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.preset import Preset, load_preset

# Fields a warm start must share with its source; the others (context, latents, dropout)
# change no weight's shape or meaning.
SHAPE_FIELDS = (
    "vocab_size",
    "dim",
    "heads",
    "layers",
    "mlp_ratio",
    "rope_base",
    "pad_id",
    "begin_id",
    "end_id",
    "tokens",  # what the ids mean: MIDI events, or which codec's codes at how many levels
    "levels",
    "codebook_size",
    "codec",
)


@dataclass(frozen=True)
class InitSource:
    """Where a warm start's weights come from."""

    model_dir: Path
    label: str  # what the user named, for run.json and messages
    preset: Preset | None = None  # set when the source is a preset
    tokens_seen: int | None = None  # what a run's checkpoint had trained on (a run source)

    def to_dict(self) -> dict[str, Any]:
        info: dict[str, Any] = {"source": self.label, "model": str(self.model_dir)}
        if self.tokens_seen is not None:
            info["tokens_seen"] = self.tokens_seen
        if self.preset is not None:
            info["preset"] = self.preset.name
            if self.preset.source is not None:
                info["preset_file"] = str(self.preset.source)
            # The preset's file may be replaced later (by an export of this very chain):
            # what its weights had seen is recorded now, for the export's total.
            from livegen.training.export import base_record

            info["preset_record"] = base_record(self.preset)
        return info


def resolve_init(source: str | Path) -> InitSource:
    """A preset name/path, a run folder or a model folder -> the model folder to start from."""
    from livegen.training.checkpointing import CHECKPOINTS, latest_checkpoint, read_state

    path = Path(source)
    if path.is_dir() and (path / CHECKPOINTS).is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise LivegenError(f"--init {source}: that run has no checkpoint yet")
        return InitSource(found / "model", str(source), tokens_seen=read_state(found).tokens_seen)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return InitSource(path, str(source))
    preset = load_preset(source)  # a PresetError names the presets there are
    return InitSource(preset.model_dir, str(source), preset)


def source_config(init: InitSource) -> PerceiverARConfig:
    config, _ = load_config(init.model_dir)
    return config


def check_compatible(source: PerceiverARConfig, target: PerceiverARConfig, label: str) -> None:
    different = [
        f"{name} {getattr(source, name)!r} -> {getattr(target, name)!r}"
        for name in SHAPE_FIELDS
        if getattr(source, name) != getattr(target, name)
    ]
    if different:
        raise LivegenError(
            f"--init {label}: its model cannot start this run ({'; '.join(different)}); "
            "only context, latents and dropout may differ"
        )


def load_init_weights(model: PerceiverAR, init: InitSource) -> None:
    """Copy the source's weights into a freshly built model (same device and dtype)."""
    parameter = next(model.parameters())
    loaded = load_model(init.model_dir)
    check_compatible(loaded.config, model.config, init.label)
    state = {
        k: t.to(device=parameter.device, dtype=parameter.dtype)
        for k, t in loaded.state_dict().items()
    }
    model.load_state_dict(state)
