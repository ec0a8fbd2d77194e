"""Codec presets: a TOML file with kind = "codec" naming a codec folder, what it was trained
on and its measured figures; and one function that opens a codec from a preset, a codec
folder or a training run.

    presets/codec-24k.toml   name, kind = "codec", description, [model] path, [training], [figures]
    presets/codec-24k/       config.json + model.safetensors (models/codec_files.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livegen.kernels.errors import PresetError
from livegen.models.codec import Codec
from livegen.models.codec_files import load_codec
from livegen.models.preset import SHIPPED_DIR, read_kind_toml

KIND = "codec"


@dataclass
class CodecPreset:
    name: str
    description: str
    model_path: str
    training: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def model_dir(self) -> Path:
        base = self.source.parent if self.source else Path.cwd()
        return (base / self.model_path).resolve()


def parse_codec_preset(text: str, source: Path | None = None) -> CodecPreset:
    data, where = read_kind_toml(text, source, KIND)
    model = data.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("path"), str):
        raise PresetError(f"{where}: [model].path (the codec folder) is required")
    return CodecPreset(
        name=str(data.get("name", source.stem if source else "codec")),
        description=str(data.get("description", "")),
        model_path=model["path"],
        training=dict(data.get("training", {})),
        figures=dict(data.get("figures", {})),
        source=source,
    )


def load_codec_preset(name_or_path: str | Path) -> CodecPreset:
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        path = SHIPPED_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        from livegen.models.preset import list_presets

        names = ", ".join(list_presets(kind=KIND)) or "none"
        raise PresetError(f"no codec preset {str(name_or_path)!r}; shipped codec presets: {names}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PresetError(f"{path}: cannot read: {error}") from None
    return parse_codec_preset(text, path.resolve())


def open_codec(spec: str | Path) -> tuple[Codec, str]:
    """A codec from a preset name or .toml, a codec folder, or a training run (its latest
    checkpoint); returns the model (eval mode, CPU) and a description of where it came from."""
    path = Path(spec)
    if path.is_dir():
        latest = path / "checkpoints" / "latest"
        if latest.is_file():
            folder = path / "checkpoints" / latest.read_text(encoding="utf-8").strip() / "model"
            return load_codec(folder), str(folder)
        return load_codec(path), str(path)
    preset = load_codec_preset(spec)
    return load_codec(preset.model_dir), f"preset {preset.name}"
