"""Codec model folders: config.json (format livegen-codec) + model.safetensors.

Same rules as models/checkpoint.py: safetensors only (pickles are refused), shapes checked
against the config. The RVQ's EMA statistics (embed_avg, cluster_size) are training state: a
preset may leave them out, and they are rebuilt from the codebook when loading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from livegen.kernels.atomic_write import write_bytes
from livegen.kernels.errors import ModelFileError
from livegen.models.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    match_weights,
    read_header,
    read_weights,
    refuse_pickles,
)
from livegen.models.codec import Codec
from livegen.models.codec_config import CodecConfig

FORMAT = "livegen-codec"
FORMAT_VERSION = 1
TRAINING_ONLY = ("embed_avg", "cluster_size")


def save_codec(
    model: Codec,
    directory: str | Path,
    *,
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    inference_only: bool = False,
) -> Path:
    """Write config.json + model.safetensors into directory; returns the folder."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: t.detach().to("cpu").contiguous()
        for name, t in model.state_dict().items()
        if not (inference_only and name.rsplit(".", 1)[-1] in TRAINING_ONLY)
    }
    if dtype is not None:
        tensors = {name: t.to(dtype) for name, t in tensors.items()}
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": model.config.to_dict(),
    }
    if metadata:
        header["meta"] = metadata
    write_bytes(directory / WEIGHTS_FILE, save(tensors, metadata={"format": FORMAT}))
    text = json.dumps(header, indent=2) + "\n"
    write_bytes(directory / CONFIG_FILE, text.encode("utf-8"))
    return directory


def load_codec_config(directory: str | Path) -> tuple[CodecConfig, dict[str, Any]]:
    header, _ = read_header(directory, FORMAT, FORMAT_VERSION, "codec")
    return CodecConfig.from_dict(header.get("config")), dict(header.get("meta") or {})


def load_codec(directory: str | Path, device: str | torch.device | None = None) -> Codec:
    """A codec folder -> Codec in eval mode, float32."""
    path = Path(directory)
    refuse_pickles(path)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such codec folder")
    config, _ = load_codec_config(path)
    tensors = read_weights(path / WEIGHTS_FILE)
    model = Codec(config)
    expected = model.state_dict()
    match_weights(path / WEIGHTS_FILE, tensors, expected, optional=TRAINING_ONLY)
    state = {k: t.to(expected[k].dtype) for k, t in tensors.items()}
    for name in set(expected) - set(tensors):  # EMA statistics left out of a preset
        prefix = name.rsplit(".", 1)[0]
        embed = state[prefix + ".embed"]
        state[name] = embed.clone() if name.endswith("embed_avg") else torch.ones(len(embed))
    model.load_state_dict(state)
    model.eval()
    if device is not None:
        model.to(device)
    return model
