"""`livegen-train export-codec`: a codec run (or codec folder) as a shipped codec preset.

presets/NAME.toml   kind = "codec", description, [model] path, [training], [figures]
presets/NAME/       config.json + model.safetensors (float16, inference tensors only)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomli_w
import torch

from livegen.kernels.errors import LivegenError
from livegen.models.codec_files import save_codec
from livegen.models.codec_preset import KIND, open_codec

HEADLINE = ("mel", "stft", "si_sdr", "visqol")


def _run_summary(source: Path) -> dict[str, Any]:
    """What a run folder says about its training (steps, data, device), if it is one."""
    info_path = source / "run.json"
    if not info_path.is_file():
        return {}
    info = json.loads(info_path.read_text(encoding="utf-8"))
    summary = {k: info[k] for k in ("device", "train", "val", "init") if info.get(k) is not None}
    summary["data"] = info.get("data", {})
    return summary


def headline_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The figures worth a line in `livegen presets`: overall codec vs Opus from eval-codec."""
    figures: dict[str, Any] = {
        "kbps": report.get("kbps"),
        "clips": report.get("clips"),
        "rtf_one_thread": report.get("rtf_one_thread"),
        "perplexity": report.get("perplexity"),
    }
    for system, values in report.get("overall", {}).items():
        figures[system] = {k: values[k] for k in HEADLINE if k in values}
    return {k: v for k, v in figures.items() if v is not None}


def export_codec_preset(
    source: Path,
    name: str,
    directory: Path,
    description: str = "",
    trained_on: str = "",
    report: dict[str, Any] | None = None,
) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise LivegenError(f"bad preset name {name!r}")
    model, where = open_codec(source)
    cfg = model.config
    folder = directory / name
    save_codec(model, folder, dtype=torch.float16, inference_only=True)
    training: dict[str, Any] = {"from": where, **_run_summary(Path(source))}
    if trained_on:
        training["trained_on"] = trained_on
    data: dict[str, Any] = {
        "name": name,
        "kind": KIND,
        "description": description
        or f"{cfg.sample_rate // 1000} kHz streaming codec, {cfg.kbps():g} kbps, "
        f"{cfg.latency_ms:g} ms latency",
        "model": {"path": name},
        "training": training,
    }
    if report:
        data["figures"] = headline_figures(report)
    path = directory / f"{name}.toml"
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(_plain(data)), encoding="utf-8")
    tmp.replace(path)
    return path


def _plain(value: Any) -> Any:
    """TOML has no null: drop Nones, recursively."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value if v is not None]
    return value
