"""The UI's pure parts: the computer keyboard's note rule, the control steps, the piano roll's
drawing and the meters' text. No app, no engine: given inputs, the exact output."""

from __future__ import annotations

import pytest
from rich.console import Console

from livegen.controls import ClockSource, Controls, Mode, RollNote, Stats
from livegen.settings_file import KeyboardSettings
from livegen.tui.controls_panel import CONTROL_KEYS, control_rows, nudged
from livegen.tui.devices import audio_device_name
from livegen.tui.keyboard import KEY_OFFSETS, REPEAT_GAP, ComputerKeyboard, note_name
from livegen.tui.meters import meters_text
from livegen.tui.pianoroll import GUTTER, MODEL_COLOUR, PLAYER_COLOUR, choose_bottom, draw_roll

CONSOLE = Console()

# ---- the computer keyboard ---------------------------------------------------------------


def test_two_rows_make_an_octave_and_a_half_from_c() -> None:
    keyboard = ComputerKeyboard(KeyboardSettings(octave=4))
    pitches = [keyboard.pitch_of(k) for k in "awsedftgyhujkolp;'"]
    assert pitches == list(range(60, 78))
    assert keyboard.pitch_of("z") is None
    assert note_name(60) == "C4" and note_name(61) == "C#4" and note_name(21) == "A0"


def test_a_press_plays_a_fixed_length_note() -> None:
    keyboard = ComputerKeyboard(KeyboardSettings(octave=4, velocity=70, note_seconds=0.3))
    (on,) = keyboard.press("a", now=1.0)
    assert (on.type, on.note, on.velocity, on.channel) == ("note_on", 60, 70, 0)
    assert keyboard.due(1.29) == []
    (off,) = keyboard.due(1.3)
    assert (off.type, off.note) == ("note_off", 60)
    assert keyboard.next_due() is None


def test_key_repeat_holds_the_note_a_new_press_strikes_again() -> None:
    keyboard = ComputerKeyboard(KeyboardSettings(note_seconds=0.3))
    assert len(keyboard.press("s", now=0.0)) == 1
    # A held key: the terminal waits its repeat delay (here 0.28 s), which cannot be told from
    # a second press, so it strikes again; then it repeats every 30 ms and the note holds.
    assert [m.type for m in keyboard.press("s", now=0.28)] == ["note_off", "note_on"]
    for i in range(1, 20):
        assert keyboard.press("s", now=0.28 + 0.03 * i) == []
    assert keyboard.due(0.7) == []
    assert keyboard.next_due() == pytest.approx(0.28 + 0.03 * 19 + 0.3)
    # let go: the repeats stop and the note ends note_seconds after the last one
    (off,) = keyboard.due(0.28 + 0.03 * 19 + 0.3)
    assert off.type == "note_off"
    # a fresh press after more than a repeat gap, while the note sounds: strikes it again
    keyboard.press("d", now=10.0)
    off, on = keyboard.press("d", now=10.0 + REPEAT_GAP + 0.01)
    assert (off.type, on.type) == ("note_off", "note_on")


def test_octave_velocity_and_length_keys_stay_in_range() -> None:
    keyboard = ComputerKeyboard(KeyboardSettings(octave=7, velocity=120, note_seconds=3.0))
    for _ in range(5):
        keyboard.shift_octave(1)
        keyboard.shift_velocity(1)
        keyboard.shift_length(1)
    assert keyboard.settings.octave == 8
    assert keyboard.settings.velocity == 127
    assert keyboard.settings.note_seconds == 4.0
    assert keyboard.pitch_of("'") == 125  # the top key still a MIDI note
    for _ in range(20):
        keyboard.shift_octave(-1)
        keyboard.shift_velocity(-1)
        keyboard.shift_length(-1)
    assert (keyboard.settings.octave, keyboard.settings.velocity) == (0, 1)
    assert keyboard.settings.note_seconds == 0.1


def test_release_all_ends_every_sounding_note() -> None:
    keyboard = ComputerKeyboard()
    for k in "adg":
        keyboard.press(k, 0.0)
    assert sorted(m.note for m in keyboard.release_all()) == [60, 64, 67]
    assert keyboard.due(100.0) == []


# ---- control steps -----------------------------------------------------------------------


def test_each_control_moves_and_is_clamped() -> None:
    c = Controls()
    assert nudged(c, "temperature", 1) == {"temperature": 1.05}
    assert nudged(Controls(temperature=0.05), "temperature", -1) == {"temperature": 0.05}
    assert nudged(c, "top_p", 1) == {"top_p": 1.0}
    assert nudged(c, "density", -1) == {"density": -0.5}
    assert nudged(c, "response_seconds", 1) == {"response_seconds": 6.0}
    assert nudged(c, "tempo_bpm", -1) == {"tempo_bpm": 118.0}
    assert nudged(Controls(low_pitch=48, high_pitch=72), "register_shift", 1) == {
        "low_pitch": 60,
        "high_pitch": 84,
    }
    # at the top, the register shifts only as far as MIDI goes, keeping its width
    assert nudged(Controls(low_pitch=100, high_pitch=120), "register_shift", 1) == {
        "low_pitch": 107,
        "high_pitch": 127,
    }
    assert nudged(Controls(low_pitch=60, high_pitch=72), "register_width", -1) == {}
    assert nudged(c, "register_width", 1) == {"low_pitch": 15, "high_pitch": 114}
    assert nudged(c, "mode", 1) == {"mode": Mode.CALL}
    assert nudged(Controls(mode=Mode.ACCOMPANY), "mode", 1) == {"mode": Mode.CONTINUE}
    assert nudged(c, "clock", 1) == {"clock": ClockSource.MIDI}
    assert nudged(c, "passthrough", 1) == {"passthrough": False}
    assert nudged(c, "quantize", 1) == {"quantize": True}
    for name in ("temperature", "top_p", "density", "response_seconds", "tempo_bpm"):
        for direction in (-1, 1):
            c.changed(**nudged(c, name, direction))  # every step is a valid control
    with pytest.raises(ValueError):
        nudged(c, "volume", 1)


def test_help_lists_a_key_for_every_control() -> None:
    described = " ".join(k.what for k in CONTROL_KEYS)
    for word in ("temperature", "top-p", "register", "density", "response length"):
        assert word in described
    for word in ("passthrough", "quantise", "clock source", "PANIC", "record", "mode"):
        assert word in described
    assert len(KEY_OFFSETS) == 18


def test_audio_device_name_drops_the_host_api() -> None:
    assert audio_device_name("system (JACK Audio Connection Kit)") == "system"
    assert (
        audio_device_name("PCH: ALC3246 Analog (hw:0,0) (ALSA)") == "PCH: ALC3246 Analog (hw:0,0)"
    )
    assert audio_device_name("pulse") == "pulse"


# ---- piano roll --------------------------------------------------------------------------


def _cells(strips) -> list[str]:
    return [strip.text[GUTTER:] for strip in strips]


def _colour_at(strip, offset: int) -> str | None:
    """The foreground colour of the cell at `offset` in a strip."""
    position = 0
    for segment in strip:
        if position <= offset < position + len(segment.text):
            return segment.style.color.name if segment.style and segment.style.color else None
        position += len(segment.text)
    raise IndexError(offset)


def test_roll_draws_each_note_where_and_when_it_sounds() -> None:
    # 10 columns over 10 s, now = 10: column c covers [c, c+1) s; rows hold pitches in pairs
    notes = [
        RollNote("player", 61, 80, start=0.0, end=3.0),  # upper half of the bottom row
        RollNote("model", 60, 80, start=5.0, end=None),  # lower half, still sounding
        RollNote("model", 63, 80, start=2.0, end=2.5),  # upper half of the second row
    ]
    lines = draw_roll(notes, now=10.0, width=GUTTER + 10, height=2, seconds=10.0, bottom=60)
    rows = _cells(lines)
    assert rows[1][:3] == "▀▀▀"  # the player's C#4 from 0 s to 3 s
    assert rows[1][5:] == "▄▄▄▄▄"  # the model's C4 from 5 s to now
    assert rows[0] == "  ▀       "  # D#4 for half a second at 2 s
    # colours: the player's and the model's notes differ
    assert _colour_at(lines[1], GUTTER) == PLAYER_COLOUR
    assert _colour_at(lines[1], GUTTER + 6) == MODEL_COLOUR
    assert lines[1].text.startswith("C4")  # rows holding a C are labelled
    assert all(strip.cell_length == GUTTER + 10 for strip in lines)


def test_roll_leaves_out_notes_outside_the_window() -> None:
    notes = [
        RollNote("player", 60, 80, start=0.0, end=1.0),  # ended before the window
        RollNote("player", 90, 80, start=9.0, end=None),  # above the pitches shown
        RollNote("model", 60, 80, start=11.0, end=None),  # not yet begun
    ]
    lines = draw_roll(notes, now=10.0, width=GUTTER + 8, height=2, seconds=4.0, bottom=60)
    assert all(set(row) == {" "} for row in _cells(lines))


def test_pitch_window_follows_the_notes_without_jumping() -> None:
    around_c4 = [RollNote("player", p, 80, 0.0) for p in (60, 64, 67)]
    assert choose_bottom(around_c4, span=24, bottom=50) == 50  # all shown: stay
    high = [RollNote("model", p, 80, 0.0) for p in (96, 100)]
    bottom = choose_bottom(high, span=24, bottom=50)
    assert bottom <= 96 and bottom + 24 > 100 and bottom % 2 == 0
    assert choose_bottom([RollNote("model", 127, 80, 0.0)], 24, 50) == 104
    assert choose_bottom([], 24, 50) == 50


def test_pitch_window_keeps_the_players_notes_when_not_all_fit() -> None:
    """The model answering three octaves away does not pull the window off the player's hands
    (a TUI test failed so when a tiny model's answer came before the roll was read)."""
    player = [RollNote("player", p, 80, 0.0) for p in (60, 64, 67)]
    model = [RollNote("model", p, 80, 1.0 + i) for i, p in enumerate((96, 100, 103))]
    assert choose_bottom(player + model, span=24, bottom=50) == 50  # the player's fit: stay
    bottom = choose_bottom(player + model, span=24, bottom=80)
    assert bottom <= 60 and bottom + 24 > 67 and bottom % 2 == 0
    # Of the windows that hold the player's notes, the one that shows most of the model's.
    near = [RollNote("model", p, 80, 9.0 + i) for i, p in enumerate((40, 44, 48, 100))]
    assert choose_bottom(player + near, span=24, bottom=80) == 44  # 44, 48, 60, 64, 67 shown
    wide = [RollNote("player", p, 80, float(p)) for p in (30, 90)]
    assert choose_bottom(wide + model, span=24, bottom=50) == 78  # the player's newest note


# ---- meters ------------------------------------------------------------------------------


def test_meters_say_what_is_wrong() -> None:
    stats = Stats(
        running=True,
        tokens_per_s=250.0,
        ms_per_token_p50=1.5,
        ms_per_token_p99=3.25,
        late_events=3,
        xruns=0,
        tempo_bpm=128.4,
        beat=3,
        recording_path="/tmp/rec/session-1.mid",
        recording_seconds=75.0,
    )
    text = meters_text(stats, Controls(clock=ClockSource.MIDI))
    plain = text.plain
    assert "250 tok/s" in plain and "1.5 ms p50 3.2 p99" in plain
    assert all(len(line) <= 46 for line in plain.splitlines())  # fits beside the controls
    assert "MIDI clock 128.4 bpm  beat 3" in plain
    assert "● REC session-1.mid  1:15" in plain
    late = plain.index("late 3") + len("late ")
    assert "red" in str(text.get_style_at_offset(CONSOLE, late))
    assert "GPU n/a" in plain
    stopped = meters_text(Stats(), Controls()).plain
    assert "stopped" in stopped and "not recording" in stopped
    assert "internal clock 120 bpm" in stopped


def test_the_key_table_makes_unique_bindings_to_real_actions() -> None:
    from livegen.tui.jam_screen import JamScreen

    keys = [binding.key for binding in JamScreen.BINDINGS]
    assert len(keys) == len(set(keys))
    for binding in JamScreen.BINDINGS:
        name = binding.action.split("(")[0]
        assert callable(getattr(JamScreen, f"action_{name}", None)), binding.action
        if name == "nudge":  # the control it names exists
            control = binding.action.split("'")[1]
            nudged(Controls(), control, 1)
        if name == "keyboard":  # the keyboard setting it names exists
            setting = binding.action.split("'")[1]
            assert callable(getattr(ComputerKeyboard, f"shift_{setting}", None)), binding.action
    # Every panel row shows its keys: a row name misspelt in the table would leave it blank.
    assert all(keys for _, _, keys in control_rows(Controls(), KeyboardSettings()))
