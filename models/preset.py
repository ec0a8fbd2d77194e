"""Presets: a TOML file that names a model, its sampling defaults, its sound and its provenance.

    presets/piano.toml      the preset
    presets/piano/          its model: config.json + model.safetensors (see models/checkpoint.py)

`livegen-train export` writes presets; the app reads them. The schema lives here, below both.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livegen.kernels.atomic_write import write_text
from livegen.kernels.errors import BadValueError, PresetError
from livegen.kernels.values import (
    FRACTION,
    MIDI_BYTE,
    MIDI_CHANNEL,
    NONNEGATIVE_INT,
    PROBABILITY_CUT,
    TEMPERATURE,
    Bound,
    check_fields,
)

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "presets"
# The user's own presets (e.g. `livegen-train finetune` + `export`) live beside the jam's
# settings: platformdirs' user_config_dir("livegen")/presets, or $LIVEGEN_CONFIG_DIR/presets
# (the same folder the TUI lists). Shipped names come first, so none is shadowed silently.
CONFIG_DIR_ENV = "LIVEGEN_CONFIG_DIR"
USER_PRESETS = "presets"
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"

# What each sampling control may be: presets, `continue`'s options and the decoder's
# SamplingParams all check against these (here, so reading a preset needs no torch).
SAMPLING_BOUNDS = {
    "temperature": TEMPERATURE,
    "top_k": NONNEGATIVE_INT,
    "top_p": PROBABILITY_CUT,
    "min_p": FRACTION,
    "low_pitch": MIDI_BYTE,
    "high_pitch": MIDI_BYTE,
    "max_polyphony": Bound(1, 128, integer=True),
    "max_note_seconds": Bound(0.01, 3600.0),
    "density": Bound(-20.0, 20.0),
}
# The preset's follow-the-player numbers (its flags are checked by type).
FOLLOW_BOUNDS = {
    "follow_density": Bound(0.0, 10.0),
    "follow_register": Bound(-1, 48, integer=True),
    "follow_key_bias": Bound(0.0, 10.0),
    "follow_register_steer": Bound(0.0, 10.0),
    "follow_rhythm": Bound(0, 4, integer=True),
    "follow_rhythm_variation": Bound(0.0, 1.0),
}
SOUND_BOUNDS = {"program": MIDI_BYTE, "channel": MIDI_CHANNEL}
# The command-line overrides of a preset's sampling (`continue`, `eval-continuations`):
# option -> (SamplingParams field, help); each held to its bound above when parsed.
SAMPLING_OPTIONS = {
    "--temperature": ("temperature", "override the preset's temperature"),
    "--top-p": ("top_p", "override the preset's top-p"),
    "--top-k": ("top_k", "override the preset's top-k (0: off)"),
    "--min-p": ("min_p", "override the preset's min-p (0: off)"),
}


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """The SAMPLING_OPTIONS on `parser`; a value outside its bound is a usage error (exit 2)."""
    for option, (field_name, text) in SAMPLING_OPTIONS.items():
        parser.add_argument(option, type=SAMPLING_BOUNDS[field_name].option(), help=text)


def sampling_overrides(args: argparse.Namespace) -> dict[str, float | int | None]:
    """The SamplingParams.from_defaults keywords the options parsed into (None: not given)."""
    return {field_name: getattr(args, field_name) for field_name, _ in SAMPLING_OPTIONS.values()}


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
    # Follow the player (models/follow.py): controls taken from what was just played.
    follow_density: float = 0.0  # gain steering notes/s to the player's (0: off)
    follow_polyphony: bool = False  # at most as many sounding notes as the player's
    follow_note_length: bool = False  # notes no longer than the player's
    follow_register: int = -1  # semitones around the player's range (-1: off)
    follow_key: bool = False  # note-ons only in the pitch classes the player used
    follow_key_bias: float = 0.0  # nats favouring the player's pitch classes, by their use
    follow_key_quota: bool = False  # each pitch class at most its share of the model's notes
    follow_register_steer: float = 0.0  # tilt rate bringing the mean pitch to the player's
    follow_rhythm: int = 0  # onsets on the player's own pulse, its grid in N parts (0: off)
    follow_rhythm_draw: bool = False  # intervals, chord sizes, lengths drawn from the player's
    follow_rhythm_variation: float = 0.0  # chance a repeat of the player's second is varied
    follow_rhythm_shuffle: bool = True  # their onsets dealt in new orders (false: their own)


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
        expected = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,)}.get(
            str(f.type)
        )
        boolean = isinstance(value, bool) and f.type != "bool"
        if expected and (not isinstance(value, expected) or boolean):
            raise PresetError(f"{where}.{f.name}: expected {f.type}, got {value!r}")


def parse_preset(text: str, source: Path | None = None) -> Preset:
    where = str(source) if source else "preset"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PresetError(f"{where}: not valid TOML: {error}") from None
    kind = data.get("kind", "midi")
    if kind != "midi":
        raise PresetError(f"{where}: a {kind} preset, not a MIDI model preset")
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
    try:
        bounds = {**SAMPLING_BOUNDS, **FOLLOW_BOUNDS}
        check_fields(
            preset.sampling, {k: bounds[k] for k in _fields(SamplingDefaults) if k in bounds}
        )
        check_fields(preset.sound, SOUND_BOUNDS)
    except BadValueError as error:
        raise PresetError(f"{where}: {error}") from None
    if preset.model.quantize not in ("none", "int8"):
        raise PresetError(f"{where} [model].quantize must be 'none' or 'int8'")
    return preset


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


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


def read_kind_toml(text: str, source: Path | None, kind: str) -> tuple[dict[str, Any], str]:
    """A preset file of another kind than MIDI ("audio", "codec") parsed: its table and the
    name its errors give; a file of the wrong kind is a PresetError saying which it is."""
    where = str(source) if source else "preset"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PresetError(f"{where}: not valid TOML: {error}") from None
    if data.get("kind") != kind:
        raise PresetError(f"{where}: not a {kind} preset (kind = {data.get('kind', 'midi')!r})")
    return data, where


def preset_kind(path: Path) -> str:
    """A preset file's kind: "midi" (the default), "audio" or "codec"; "" when unreadable."""
    try:
        value = tomllib.loads(path.read_text(encoding="utf-8")).get("kind", "midi")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ""
    return value if isinstance(value, str) else ""


def list_presets(directory: Path = SHIPPED_DIR, kind: str | None = "midi") -> list[str]:
    """Preset names in a folder, of one kind (MIDI model presets by default; None: all)."""
    paths = sorted(directory.glob("*.toml"))
    return [p.stem for p in paths if kind is None or preset_kind(p) in (kind, "")]


def preset_to_toml(preset: Preset) -> str:
    # Imported here: reading a preset (every command) needs only tomllib; a GPU machine's
    # ready-made Python may lack the writer (scripts/gpu_check.sh runs there as it is).
    import tomli_w

    data: dict[str, Any] = {"name": preset.name, "description": preset.description}
    for part in ("model", "sampling", "sound"):
        data[part] = dataclasses.asdict(getattr(preset, part))
    if preset.training:
        data["training"] = preset.training
    return tomli_w.dumps(data)


def save_preset(preset: Preset, path: Path) -> None:
    """Write atomically: a preset is read by a running jam, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, preset_to_toml(preset))
