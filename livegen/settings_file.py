"""The jam's saved settings: one TOML file in the user's config directory.

    [jam]        JamSettings fields (ports, preset, audio, recording)
    [controls]   Controls fields (temperature, register, mode, ...)
    [keyboard]   the computer keyboard (octave, velocity, note length)

The directory is platformdirs' user_config_dir("livegen") unless LIVEGEN_CONFIG_DIR names
another (tests point it at a temporary folder). A file that is missing gives the defaults; a
malformed one gives the defaults and a message saying what was wrong -- never a crash. Before
livegen rewrites a file it could not read whole, the user's file is copied aside
(back_up_settings: settings.toml.bak), so nothing they wrote is lost.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from platformdirs import user_config_dir

from livegen.controls import Controls, JamSettings
from livegen.kernels.atomic_write import write_bytes, write_text
from livegen.kernels.values import Bound, check_fields

ENV_DIR = "LIVEGEN_CONFIG_DIR"
FILE_NAME = "settings.toml"


KEYBOARD_BOUNDS = {
    "octave": Bound(0, 8, integer=True),
    "velocity": Bound(1, 127, integer=True),
    "note_seconds": Bound(0.05, 4.0),
}


@dataclass
class KeyboardSettings:
    """The computer keyboard as a piano: which octave the home row plays, how hard, how long."""

    octave: int = 4  # the A key plays C of this octave (C4 = MIDI 60)
    velocity: int = 90
    note_seconds: float = 0.3  # terminals send no key releases: each press plays this long

    def validate(self) -> None:
        check_fields(self, KEYBOARD_BOUNDS)


@dataclass
class SavedSettings:
    jam: JamSettings = field(default_factory=JamSettings)
    controls: Controls = field(default_factory=Controls)
    keyboard: KeyboardSettings = field(default_factory=KeyboardSettings)


def config_dir() -> Path:
    override = os.environ.get(ENV_DIR)
    return Path(override) if override else Path(user_config_dir("livegen"))


def settings_path() -> Path:
    return config_dir() / FILE_NAME


def _table(cls: type, data: Any, section: str, problems: list[str]) -> Any:
    """Build cls from a TOML table, keeping the defaults for whatever is wrong (and saying so)."""
    default = cls()
    if data is None:
        return default
    if not isinstance(data, dict):
        problems.append(f"[{section}] is not a table; using defaults")
        return default
    fields = {f.name: f for f in dataclasses.fields(cls)}
    good: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            problems.append(f"[{section}] unknown key {key!r} ignored")
            continue
        if not _fits(value, getattr(default, key), str(fields[key].type)):
            problems.append(f"[{section}] {key} = {value!r} has the wrong type; default used")
            continue
        # Add keys one at a time so one value out of range costs only itself.
        try:
            cls(**good, **{key: value}).validate()
        except ValueError as error:
            problems.append(f"[{section}] {error}; default used")
            continue
        good[key] = value
    return cls(**good)


def _fits(value: Any, default: Any, annotation: str) -> bool:
    """Whether a TOML value suits a field (its default and its annotation, e.g. "int | None")."""
    if isinstance(value, bool) or isinstance(default, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float) or annotation.startswith("float"):
        return isinstance(value, int | float)
    if isinstance(default, str) or annotation.startswith("str"):  # enums are str subclasses
        return isinstance(value, str)
    if isinstance(default, int) or annotation.startswith("int"):
        return isinstance(value, int)
    return False


def parse_settings(text: str, where: str = "settings") -> tuple[SavedSettings, list[str]]:
    """Settings from TOML text, and the problems found (each names the file and the key)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return SavedSettings(), [f"{where}: not valid TOML ({error}); using the defaults"]
    problems: list[str] = []
    for key in sorted(set(data) - {"jam", "controls", "keyboard"}):
        problems.append(f"[{key}] is not a settings section; ignored")
    saved = SavedSettings(
        jam=_table(JamSettings, data.get("jam"), "jam", problems),
        controls=_table(Controls, data.get("controls"), "controls", problems),
        keyboard=_table(KeyboardSettings, data.get("keyboard"), "keyboard", problems),
    )
    return saved, [f"{where}: {p}" for p in problems]


def load_settings(path: Path | None = None) -> tuple[SavedSettings, list[str]]:
    path = path or settings_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SavedSettings(), []
    except (OSError, UnicodeDecodeError) as error:
        return SavedSettings(), [f"{path}: cannot read ({error}); using the defaults"]
    return parse_settings(text, str(path))


def _plain(obj: Any) -> dict[str, Any]:
    """A dataclass as a TOML table: None values are left out (TOML has no null)."""
    out: dict[str, Any] = {}
    for key, value in dataclasses.asdict(obj).items():
        if value is None:
            continue
        out[key] = str(value) if isinstance(value, str) else value
    return out


def settings_to_toml(saved: SavedSettings) -> str:
    data = {
        "jam": _plain(saved.jam),
        "controls": _plain(saved.controls),
        "keyboard": _plain(saved.keyboard),
    }
    return tomli_w.dumps(data)


def save_settings(saved: SavedSettings, path: Path | None = None) -> Path:
    """Write atomically, so a crash or a full disk never leaves a half file (WriteError)."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, settings_to_toml(saved))


def back_up_settings(path: Path | None = None) -> Path | None:
    """Copy the settings file to the first free NAME.bak, NAME.bak.1, ... (None: no file).
    Called before livegen rewrites a file it could not read whole."""
    path = path or settings_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    backup, n = path.with_name(path.name + ".bak"), 1
    while backup.exists():
        if backup.read_bytes() == data:
            return backup  # already kept
        backup, n = path.with_name(f"{path.name}.bak.{n}"), n + 1
    return write_bytes(backup, data)
