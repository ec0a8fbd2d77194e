"""Presets: a TOML file that names a model, its sampling defaults, its sound and its provenance.

    presets/piano.toml      the preset
    presets/piano/          its model: config.json + model.safetensors (see models/checkpoint.py)

`livegen-train export` writes presets; the app reads them. The schema lives here, below both.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from livegen.kernels.errors import PresetError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "presets"
# The user's own presets (e.g. `livegen-train finetune` + `export`) live beside the jam's
# settings: platformdirs' user_config_dir("livegen")/presets, or $LIVEGEN_CONFIG_DIR/presets
# (the same folder the TUI lists). Shipped names come first, so none is shadowed silently.
CONFIG_DIR_ENV = "LIVEGEN_CONFIG_DIR"
USER_PRESETS = "presets"
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"


@dataclass
class ModelSpec:
    path: str  # folder with config.json + model.safetensors, relative to the preset file
    quantize: str = "none"  # "none" or "int8" (CPU dynamic quantisation)


@dataclass
class SamplingDefaults:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.95
    min_p: float = 0.0
    low_pitch: int = 21
    high_pitch: int = 108
    max_polyphony: int = 10
    max_note_seconds: float = 4.0


@dataclass
class Sound:
    soundfont: str = DEFAULT_SOUNDFONT
    program: int = 0
    channel: int = 1  # 0-based MIDI channel of the model's notes (the player's stays on 0)


@dataclass
class Preset:
    name: str
    description: str
    model: ModelSpec
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    sound: Sound = field(default_factory=Sound)
    training: dict[str, Any] = field(default_factory=dict)  # what it was trained on, how long
    source: Path | None = None  # the TOML file it came from

    @property
    def model_dir(self) -> Path:
        base = self.source.parent if self.source else Path.cwd()
        return (base / self.model.path).resolve()


def _section(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise PresetError(f"{where}: expected a table, got {type(table).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise PresetError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**table)
    except TypeError as error:  # a required key is missing
        raise PresetError(f"{where}: {error}") from None


def _check_types(obj: Any, where: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        expected = {"float": (int, float), "int": (int,), "str": (str,)}.get(str(f.type))
        if expected and (not isinstance(value, expected) or isinstance(value, bool)):
            raise PresetError(f"{where}.{f.name}: expected {f.type}, got {value!r}")


def parse_preset(text: str, source: Path | None = None) -> Preset:
    where = str(source) if source else "preset"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PresetError(f"{where}: not valid TOML: {error}") from None
    for key in ("name", "model"):
        if key not in data:
            raise PresetError(f"{where}: missing required key {key!r}")
    preset = Preset(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        model=_section(ModelSpec, data["model"], f"{where} [model]"),
        sampling=_section(SamplingDefaults, data.get("sampling", {}), f"{where} [sampling]"),
        sound=_section(Sound, data.get("sound", {}), f"{where} [sound]"),
        training=dict(data.get("training", {})),
        source=source,
    )
    for part in ("model", "sampling", "sound"):
        _check_types(getattr(preset, part), f"{where} [{part}]")
    if preset.model.quantize not in ("none", "int8"):
        raise PresetError(f"{where} [model].quantize must be 'none' or 'int8'")
    return preset


def user_presets_dir() -> Path:
    """Where a user's own presets go (and are found by name)."""
    import os

    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override) / USER_PRESETS
    from platformdirs import user_config_dir

    return Path(user_config_dir("livegen")) / USER_PRESETS


def find_preset(name_or_path: str | Path) -> Path:
    """A preset by file path, or by name among the shipped presets, then the user's."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise PresetError(f"{path}: no such preset file")
        return path
    for folder in (SHIPPED_DIR, user_presets_dir()):
        found = folder / f"{name_or_path}.toml"
        if found.is_file():
            return found
    names = ", ".join(list_presets()) or "none"
    mine = ", ".join(list_presets(user_presets_dir())) or "none"
    raise PresetError(
        f"no preset named {str(name_or_path)!r}; shipped presets: {names}; "
        f"yours ({user_presets_dir()}): {mine}"
    )


def load_preset(name_or_path: str | Path) -> Preset:
    path = find_preset(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PresetError(f"{path}: cannot read: {error}") from None
    return parse_preset(text, source=path.resolve())


def list_presets(directory: Path = SHIPPED_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def preset_to_toml(preset: Preset) -> str:
    data: dict[str, Any] = {"name": preset.name, "description": preset.description}
    for part in ("model", "sampling", "sound"):
        data[part] = dataclasses.asdict(getattr(preset, part))
    if preset.training:
        data["training"] = preset.training
    return tomli_w.dumps(data)


def save_preset(preset: Preset, path: Path) -> None:
    """Write atomically: a preset is read by a running jam, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(preset_to_toml(preset), encoding="utf-8")
    tmp.replace(path)
