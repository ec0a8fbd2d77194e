"""The jam's settings file: round trip, the config directory override, and bad files that
must give a message and the defaults, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from livegen.controls import ClockSource, Controls, JamSettings, Mode
from livegen.settings_file import (
    KeyboardSettings,
    SavedSettings,
    load_settings,
    parse_settings,
    save_settings,
    settings_path,
)


def test_config_dir_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LIVEGEN_CONFIG_DIR", str(tmp_path / "cfg"))
    assert settings_path() == tmp_path / "cfg" / "settings.toml"


def test_missing_file_gives_defaults_quietly(tmp_path: Path) -> None:
    saved, problems = load_settings(tmp_path / "nope.toml")
    assert saved == SavedSettings()
    assert problems == []


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    saved = SavedSettings(
        jam=JamSettings(preset="/x/tiny.toml", input="Keystation", output="none", program=5),
        controls=Controls(mode=Mode.ACCOMPANY, temperature=0.8, clock=ClockSource.MIDI),
        keyboard=KeyboardSettings(octave=3, velocity=40, note_seconds=1.5),
    )
    path = save_settings(saved, tmp_path / "deep" / "settings.toml")
    loaded, problems = load_settings(path)
    assert problems == []
    assert loaded == saved
    assert not list(path.parent.glob("*.tmp"))  # written atomically, nothing left behind


def test_not_toml_gives_defaults_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[jam\npreset = ", encoding="utf-8")
    saved, problems = load_settings(path)
    assert saved == SavedSettings()
    assert len(problems) == 1
    assert str(path) in problems[0] and "not valid TOML" in problems[0]


def test_binary_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_bytes(b"\xff\xfe\x00junk")
    saved, problems = load_settings(path)
    assert saved == SavedSettings()
    assert problems and "cannot read" in problems[0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[controls]\ntemperature = "hot"', "temperature = 'hot' has the wrong type"),
        (
            "[controls]\ntemperature = 99.0",
            "temperature must be a finite number in 0.05..5.0, got 99.0",
        ),
        ('[controls]\nmode = "polka"', "'polka' is not a valid Mode"),
        ("[jam]\nblocksize = 3", "blocksize must be an integer in 16..8192, got 3"),
        ('[jam]\nprogram = "piano"', "program = 'piano' has the wrong type"),
        ("[jam]\nwhatever = 1", "unknown key 'whatever'"),
        ("[keyboard]\noctave = 12", "octave must be an integer in 0..8, got 12"),
        ("[keyboard]\nvelocity = true", "velocity = True has the wrong type"),
        ("jam = 3", "[jam] is not a table"),
        ("[extra]\nx = 1", "[extra] is not a settings section"),
    ],
)
def test_a_bad_value_costs_only_itself(text: str, fragment: str) -> None:
    saved, problems = parse_settings(text, "settings.toml")
    assert any(fragment in p for p in problems), problems
    assert saved == SavedSettings()  # the bad value fell back to its default


def test_good_values_beside_a_bad_one_are_kept() -> None:
    text = '[controls]\ntemperature = 0.7\ntop_p = 7.0\nmode = "call"\n[keyboard]\noctave = 2\n'
    saved, problems = parse_settings(text)
    assert saved.controls.temperature == 0.7
    assert saved.controls.mode is Mode.CALL
    assert saved.controls.top_p == Controls().top_p
    assert saved.keyboard.octave == 2
    assert len(problems) == 1 and "top_p" in problems[0]
