"""Audio presets: a Perceiver AR over codec tokens and the codec preset that speaks them.

presets/NAME.toml   name, kind = "audio", description, [model] path, [codec] preset,
                    [sampling] (temperature, top_k, top_p, min_p), [render] (how a MIDI
                    prompt is rendered before it is encoded), [training]
presets/NAME/       the model: config.json + model.safetensors (models/checkpoint.py)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livegen.kernels.atomic_write import write_text
from livegen.kernels.errors import BadValueError, PresetError
from livegen.kernels.values import MIDI_BYTE, check_fields
from livegen.models.preset import DEFAULT_SOUNDFONT, SAMPLING_BOUNDS, find_preset, read_kind_toml

KIND = "audio"
AUDIO_SAMPLING = ("temperature", "top_k", "top_p", "min_p")


@dataclass
class AudioSampling:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.95
    min_p: float = 0.0


@dataclass
class Render:
    soundfont: str = DEFAULT_SOUNDFONT
    program: int = 0  # General MIDI program a MIDI prompt is rendered with


@dataclass
class AudioPreset:
    name: str
    description: str
    model_path: str
    codec: str  # a codec preset name (or a path, relative to this file)
    sampling: AudioSampling = field(default_factory=AudioSampling)
    render: Render = field(default_factory=Render)
    quantize: str = "none"
    training: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def model_dir(self) -> Path:
        base = self.source.parent if self.source else Path.cwd()
        return (base / self.model_path).resolve()

    @property
    def codec_spec(self) -> str:
        """The codec preset's name, or its path resolved beside this preset."""
        if self.source and (self.codec.endswith(".toml") or "/" in self.codec):
            return str((self.source.parent / self.codec).resolve())
        return self.codec


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise PresetError(f"{where}: [{name}] must be a table")
    return table


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise PresetError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**table)


def parse_audio_preset(text: str, source: Path | None = None) -> AudioPreset:
    data, where = read_kind_toml(text, source, KIND)
    model, codec = _table(data, "model", where), _table(data, "codec", where)
    if not isinstance(model.get("path"), str):
        raise PresetError(f"{where}: [model].path (the model folder) is required")
    if not isinstance(codec.get("preset"), str):
        raise PresetError(f"{where}: [codec].preset (the codec that speaks its tokens) is required")
    sampling = _build(AudioSampling, _table(data, "sampling", where), f"{where} [sampling]")
    render = _build(Render, _table(data, "render", where), f"{where} [render]")
    try:
        check_fields(sampling, {k: SAMPLING_BOUNDS[k] for k in AUDIO_SAMPLING}, "[sampling].")
        check_fields(render, {"program": MIDI_BYTE}, "[render].")
    except BadValueError as error:
        raise PresetError(f"{where}: {error}") from None
    return AudioPreset(
        name=str(data.get("name", source.stem if source else "audio")),
        description=str(data.get("description", "")),
        model_path=model["path"],
        codec=codec["preset"],
        sampling=sampling,
        render=render,
        quantize=str(model.get("quantize", "none")),
        training=dict(data.get("training", {})),
        source=source,
    )


def load_audio_preset(name_or_path: str | Path) -> AudioPreset:
    path = find_preset(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PresetError(f"{path}: cannot read: {error}") from None
    return parse_audio_preset(text, path.resolve())


def save_audio_preset(preset: AudioPreset, path: Path) -> None:
    import tomli_w

    data: dict[str, Any] = {
        "name": preset.name,
        "kind": KIND,
        "description": preset.description,
        "model": {"path": preset.model_path, "quantize": preset.quantize},
        "codec": {"preset": preset.codec},
        "sampling": dataclasses.asdict(preset.sampling),
        "render": dataclasses.asdict(preset.render),
    }
    if preset.training:
        data["training"] = preset.training
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, tomli_w.dumps(data))


def load_audio_models(  # noqa: ANN201
    preset: AudioPreset, device: str | None = None, quantize: str | None = None
):
    """(the preset's Perceiver AR as a LoadedModel, its codec on the CPU), checked to agree;
    `quantize` overrides the preset's [model].quantize."""
    from livegen.models.codec_preset import open_codec
    from livegen.models.loading import load_model_for

    how = preset.quantize if quantize is None else quantize
    loaded = load_model_for(preset.model_dir, device=device, quantize=how)
    config = loaded.model.config
    codec, _ = open_codec(preset.codec_spec)
    if config.tokens != "audio":
        raise PresetError(f"{preset.source}: its model is not a model of codec tokens")
    if config.codebook_size != codec.config.codebook_size or config.levels > codec.config.levels:
        raise PresetError(
            f"{preset.source}: its model expects {config.levels} levels x "
            f"{config.codebook_size} codes; codec {preset.codec!r} has "
            f"{codec.config.levels} x {codec.config.codebook_size}"
        )
    return loaded, codec
