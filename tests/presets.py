"""Tiny real presets for tests: a random-weight Perceiver AR saved the way export saves one."""

from __future__ import annotations

from pathlib import Path

import torch

from livegen.models.checkpoint import save_model
from livegen.models.config import PerceiverARConfig
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.preset import ModelSpec, Preset, SamplingDefaults, save_preset


def tiny_preset(
    folder: Path,
    name: str = "tiny",
    *,
    context: int = 64,
    latents: int = 16,
    dim: int = 32,
    layers: int = 1,
    seed: int = 0,
) -> Path:
    """Write folder/NAME.toml and folder/NAME/ (config.json + model.safetensors); return the
    TOML path. Untrained weights: the model plays noise, which is all the plumbing needs."""
    torch.manual_seed(seed)
    config = PerceiverARConfig(context=context, latents=latents, dim=dim, heads=2, layers=layers)
    save_model(PerceiverAR(config), folder / name, metadata={"preset": name})
    preset = Preset(
        name=name,
        description=f"test preset, random weights, context {context}, {latents} latents",
        model=ModelSpec(path=name),
        sampling=SamplingDefaults(),
        training={"data": "none (random weights)"},
    )
    path = folder / f"{name}.toml"
    save_preset(preset, path)
    return path


def tiny_audio_preset(
    folder: Path, name: str = "tiny-audio", *, levels: int = 2, seed: int = 0
) -> Path:
    """An audio preset (kind = "audio") over the shipped codec-24k, saved the way export saves
    one: folder/NAME.toml and folder/NAME/. Random weights: the model writes random codes,
    which the codec decodes into a steady noise, all the live path's plumbing needs."""
    from livegen.models.audio_preset import AudioPreset, save_audio_preset

    torch.manual_seed(seed)
    config = PerceiverARConfig(
        tokens="audio",
        levels=levels,
        codebook_size=1024,
        codec="codec-24k",
        context=256,
        latents=32,
        dim=32,
        heads=2,
        layers=1,
    )
    save_model(PerceiverAR(config), folder / name, metadata={"preset": name})
    preset = AudioPreset(
        name=name,
        description="test audio preset, random weights",
        model_path=name,
        codec="codec-24k",
        training={"data": "none (random weights)"},
    )
    path = folder / f"{name}.toml"
    save_audio_preset(preset, path)
    return path
