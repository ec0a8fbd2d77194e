"""The jam UI driven by Textual's Pilot, on the REAL engine (livegen.engine.JamEngine, in its
own process exactly as `livegen` runs it: livegen/engine_host.py) with a tiny real preset, real MIDI ports on a private JACK server (dummy driver) and a real
recorder: every control key changes the engine's parameter, notes played on the computer
keyboard reach the engine and come back on the piano roll, the pickers list the JACK ports
that exist (and notice new ones), a set-up change restarts the engine, quitting finishes the
recording and saves the settings, and a bad preset is a message, not a crash."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import rtmidi
from textual.widgets import Input, Select

from livegen.controls import ClockSource, Controls, Mode
from livegen.engine_host import EngineProcess
from livegen.midi_ports import forget_midi_clients
from livegen.settings_file import SavedSettings, load_settings
from livegen.tui.app import JamApp
from livegen.tui.controls_panel import ControlsPanel
from livegen.tui.pianoroll import PLAYER_COLOUR, PianoRoll
from livegen.tui.screens import SetupScreen
from livegen.tui.status import Legend, ProblemsBanner, StatusLine
from tests.jam_peers import jack_settings
from tests.presets import tiny_preset

SIZE = (120, 40)
START_TIMEOUT = 60.0  # the decode worker imports torch in a fresh process: seconds on 2 cores


@pytest.fixture
def preset(tmp_path: Path) -> str:
    return str(tiny_preset(tmp_path / "presets"))


@pytest.fixture(autouse=True)
def _fresh_midi_listing(jack):  # torn down before the JACK server
    yield
    forget_midi_clients()  # its JACK client must not outlive the test's server


APPS: list[JamApp] = []


@pytest.fixture(autouse=True)
def _engines_stopped(jack):  # torn down before the JACK server
    """A failed test still stops its engine before its JACK server goes."""
    yield
    while APPS:
        app = APPS.pop()
        if app.engine is not None:
            app.engine.stop()


def make_app(tmp_path: Path, preset: str, **jam) -> JamApp:
    settings = jack_settings(  # no sound: it has its own tests; here the UI and MIDI count
        tmp_path, preset=preset, input="none", record_dir=str(tmp_path / "recordings"), **jam
    )
    app = JamApp(
        SavedSettings(jam=settings),
        engine_factory=EngineProcess,
        bench=None,  # the bench has its own tests and costs seconds
        settings_file=tmp_path / "config" / "settings.toml",
    )
    APPS.append(app)
    return app


async def wait_for(pilot, condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def shown(app: JamApp, widget: type) -> str:
    """The text a widget of the stage shows now."""
    return app.jam_screen.query_one(widget).render().plain


async def running(pilot, app: JamApp) -> EngineProcess:
    await wait_for(
        pilot,
        lambda: app.engine_state in ("running", "failed"),
        START_TIMEOUT,
        "the engine to start",
    )
    assert app.engine_state == "running", app.start_problem
    assert isinstance(app.engine, EngineProcess) and app.engine.stats().running
    return app.engine


async def quit_and_wait(pilot, app: JamApp) -> None:
    """Ctrl+Q, then wait for the engine to stop (the recording finished, the settings saved)."""
    await pilot.press("ctrl+q")
    await wait_for(pilot, lambda: app.engine_state == "stopped", 15.0, "the engine to stop")


# Each key, and what it must have done to the engine's controls, from the defaults.
KEY_EFFECTS: list[tuple[str, dict]] = [
    ("2", {"temperature": 1.05}),
    ("1", {"temperature": 1.0}),
    ("3", {"top_p": 0.9}),
    ("4", {"top_p": 0.95}),
    ("6", {"density": 0.5}),
    ("5", {"density": 0.0}),
    ("8", {"response_seconds": 6.0}),
    ("7", {"response_seconds": 4.0}),
    ("9", {"low_pitch": 9, "high_pitch": 96}),
    ("0", {"low_pitch": 21, "high_pitch": 108}),
    ("minus", {"low_pitch": 27, "high_pitch": 102}),
    ("equals_sign", {"low_pitch": 21, "high_pitch": 108}),
    ("right_square_bracket", {"tempo_bpm": 122.0}),
    ("left_square_bracket", {"tempo_bpm": 120.0}),
    ("m", {"mode": Mode.CALL}),
    ("m", {"mode": Mode.ACCOMPANY}),
    ("m", {"mode": Mode.CONTINUE}),
    ("i", {"passthrough": False}),
    ("q", {"quantize": True}),
    ("b", {"clock": ClockSource.MIDI}),
    ("b", {"clock": ClockSource.LINK}),  # the engine joins a Link session...
    ("b", {"clock": ClockSource.INTERNAL}),  # ...and leaves it
    ("r", {"recording": False}),
    ("r", {"recording": True}),
]


def test_every_control_key_changes_the_engine(jack, tmp_path: Path, preset: str) -> None:
    asyncio.run(_every_control_key(tmp_path, preset))


async def _every_control_key(tmp_path: Path, preset: str) -> None:
    app = make_app(tmp_path, preset)
    async with app.run_test(size=SIZE) as pilot:
        engine = await running(pilot, app)
        assert engine.controls == Controls()
        for key, effect in KEY_EFFECTS:
            await pilot.press(key)
            for name, value in effect.items():
                assert getattr(engine.controls, name) == value, (key, name)
        assert app.controls == engine.controls
        panel = shown(app, ControlsPanel)  # the panel shows the engine's
        assert "A0–C8" in panel and "quantise    on" in panel and "passthrough off" in panel
        # panic reaches the engine (its log says so) and the UI says it too
        await pilot.press("escape")
        await wait_for(
            pilot,
            lambda: any("] all notes off" in line for line in app.jam_screen.log_pane.lines),
            5.0,
            "the engine to log the panic",
        )
        # the computer keyboard's own controls
        await pilot.press("x", "v", "full_stop")
        kb = app.keyboard.settings
        assert (kb.octave, kb.velocity, kb.note_seconds) == (5, 100, 0.5)
        await pilot.press("z", "c", "comma")
        assert (kb.octave, kb.velocity, kb.note_seconds) == (4, 90, 0.3)
        # ValueError from the engine is a notice, not a crash
        app.change_controls(temperature=99.0)
        assert engine.controls.temperature == 1.0
        await quit_and_wait(pilot, app)
    # quitting stopped the engine, kept the recording and saved the settings
    assert not engine.stats().running
    recordings = list((tmp_path / "recordings").glob("livegen-*.mid"))
    assert len(recordings) == 1 and recordings[0].stat().st_size > 0
    saved, problems = load_settings(tmp_path / "config" / "settings.toml")
    assert problems == []
    assert saved.controls.quantize is True and saved.controls.passthrough is False


def test_keys_played_reach_the_engine_and_the_roll(jack, tmp_path: Path, preset: str) -> None:
    asyncio.run(_keys_played(tmp_path, preset))


async def _keys_played(tmp_path: Path, preset: str) -> None:
    app = make_app(tmp_path, preset)
    async with app.run_test(size=SIZE) as pilot:
        engine = await running(pilot, app)
        t0 = engine.now()
        for key, pitch in (("a", 60), ("D", 64), ("g", 67)):  # Caps Lock or Shift plays too
            await pilot.press(key)
            await wait_for(pilot, lambda p=pitch: app.last_pitch == p, 2.0, f"key {key} played")
        roll = app.jam_screen.query_one(PianoRoll)

        def played() -> set[int]:
            return {n.pitch for n in roll.notes if n.owner == "player" and n.start >= t0}

        await wait_for(pilot, lambda: played() == {60, 64, 67}, 5.0, "the roll to show C E G")

        def colours() -> set[str]:
            return {
                segment.style.color.name
                for strip in roll.lines()
                for segment in strip
                if segment.style is not None and segment.style.color is not None
            }

        # drawn: cells in the player's colour on the roll (it failed now and then when the
        # window followed the model's answer to another register; the player's notes keep it
        # now: test_tui_widgets.test_pitch_window_keeps_the_players_notes_when_not_all_fit)
        await wait_for(pilot, lambda: PLAYER_COLOUR in colours(), 2.0, "the notes drawn")
        # each note ended by itself after the note length (terminals send no releases)
        await wait_for(
            pilot,
            lambda: all(
                n.end is not None
                for n in engine.roll(t0)
                if n.owner == "player" and n.pitch in (60, 64, 67)
            ),
            5.0,
            "the keyboard's notes to end",
        )
        lengths = [n.end - n.start for n in engine.roll(t0) if n.owner == "player"]
        assert all(0.25 <= length <= 0.6 for length in lengths), lengths
        assert "last key G4" in shown(app, Legend)
        await quit_and_wait(pilot, app)


def test_pickers_list_jack_ports_and_setup_restarts(jack, tmp_path: Path, preset: str) -> None:
    asyncio.run(_pickers(jack, tmp_path, preset))


def _options(screen: SetupScreen, picker: str) -> list[str]:
    return [value for _, value in screen.choices(picker)]


async def _pickers(jack, tmp_path: Path, preset: str) -> None:
    keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "test-keys")
    keys.open_virtual_port("keys out")
    synth = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "test-synth")
    synth.open_virtual_port("synth in")
    app = make_app(tmp_path, preset)
    try:
        async with app.run_test(size=SIZE) as pilot:
            first = await running(pilot, app)
            await pilot.press("f2")
            assert isinstance(app.screen, SetupScreen)
            screen = app.screen
            inputs = screen.query_one("#input", Select)
            await wait_for(
                pilot,
                lambda: any("keys out" in o for o in _options(screen, "input")),
                10.0,
                "the input picker to list the JACK port",
            )
            assert any("synth in" in o for o in _options(screen, "output"))
            assert not any(o.startswith("livegen") for o in _options(screen, "input"))  # itself
            # a port that appears while the set-up is open shows up
            late = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "test-late")
            late.open_virtual_port("late out")
            await wait_for(
                pilot,
                lambda: any("late out" in o for o in _options(screen, "input")),
                10.0,
                "a new port to appear in the picker",
            )
            late.delete()
            await wait_for(
                pilot,
                lambda: not any("late out" in o for o in _options(screen, "input")),
                10.0,
                "a vanished port to leave the picker",
            )
            # the sound device JACK offers is listed too (sounddevice's JACK host API)
            audio = screen.query_one("#audio", Select)
            await wait_for(
                pilot,
                lambda: any(
                    label.endswith("(JACK Audio Connection Kit)")
                    for label, _ in screen.choices("audio")
                ),
                10.0,
                "the audio picker to list JACK",
            )
            # pick the keyboard, JACK's sound and call-and-response, then Jam: the engine
            # restarts with them
            (port,) = [o for o in _options(screen, "input") if "keys out" in o]
            inputs.value = port
            (jack_audio,) = [
                value
                for label, value in screen.choices("audio")
                if label.endswith("(JACK Audio Connection Kit)")
            ]
            audio.value = jack_audio
            screen.query_one("#mode", Select).value = "call"
            await pilot.press("f10")
            await wait_for(
                pilot,
                lambda: app.engine is not None and app.engine is not first,
                START_TIMEOUT,
                "the engine to restart",
            )
            engine = await running(pilot, app)
            assert engine.settings.input == port
            assert engine.controls.mode is Mode.CALL
            assert engine.settings.audio_device == jack_audio
            await wait_for(
                pilot,
                lambda: any("] sound: " in line for line in app.jam_screen.log_pane.lines),
                20.0,
                "the sound to start",
            )
            assert not any("sound" in p for p in engine.stats().problems)
            assert not first.stats().running  # the old one was stopped
            # the set-up was saved; the mode too, since it was changed in the UI
            saved, _ = load_settings(tmp_path / "config" / "settings.toml")
            assert saved.jam.input == port and saved.controls.mode is Mode.CALL
            # a note from the JACK keyboard reaches the roll (struck again each second: the
            # engine connects to the keyboard as it starts, and JACK makes the connection a
            # few cycles later; a note sent before then may go nowhere, as on any patch bay)
            t0 = engine.now()

            def heard() -> bool:
                roll = app.jam_screen.query_one(PianoRoll)
                return any(n.pitch == 72 for n in roll.notes if n.start >= t0)

            for _ in range(5):
                keys.send_message([0x90, 72, 100])
                keys.send_message([0x80, 72, 0])
                with contextlib.suppress(AssertionError):
                    await wait_for(pilot, heard, 1.0, "the JACK keyboard's note on the roll")
                if heard():
                    break
            await wait_for(pilot, heard, 0.5, "the JACK keyboard's note on the roll")
            await quit_and_wait(pilot, app)
    finally:
        keys.delete()
        synth.delete()


def test_a_missing_preset_is_a_message_then_set_up_fixes_it(jack, tmp_path: Path) -> None:
    asyncio.run(_missing_preset(tmp_path))


async def _missing_preset(tmp_path: Path) -> None:
    # the user's own preset folder (beside the settings) holds a good one
    good = str(tiny_preset(tmp_path / "config" / "presets", name="mine"))
    app = make_app(tmp_path, str(tmp_path / "nowhere.toml"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.engine_state == "failed", 20.0, "the start to fail")
        banner = shown(app, ProblemsBanner)
        assert "nowhere.toml" in banner and "F2" in banner
        await pilot.press("a", "2")  # playing and controls do not crash without an engine
        assert app.controls.temperature == 1.05
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        preset = screen.query_one("#preset", Select)
        assert good in _options(screen, "preset")
        preset.value = good
        await wait_for(
            pilot,
            lambda: "random weights" in str(screen.query_one("#preset-info").content),
            10.0,
            "the preset's description",
        )
        screen.query_one("#program", Input).value = "300"  # not a GM program
        await pilot.press("f10")
        assert app.screen is screen  # refused, with a message; nothing restarted
        screen.query_one("#program", Input).value = "5"
        await pilot.press("f10")
        engine = await running(pilot, app)
        assert engine.settings.preset == good and engine.settings.program == 5
        assert engine.controls.temperature == 1.05  # what was changed meanwhile carried over
        assert "nowhere.toml" not in shown(app, ProblemsBanner)
        await quit_and_wait(pilot, app)
    assert app.return_code == 0


def test_n_swaps_the_preset_mid_jam_without_restarting(jack, tmp_path: Path, preset: str) -> None:
    """The next-preset key: the same engine keeps running while the other preset loads
    beside it, the status line says which is on its way, then names the new one; the log
    says how long the switch took."""
    other = str(tiny_preset(tmp_path / "presets", name="other", seed=1))
    settings = jack_settings(tmp_path, preset=preset, input="none", record_dir=str(tmp_path / "r"))
    app = JamApp(
        SavedSettings(jam=settings),
        engine_factory=EngineProcess,
        bench=None,
        presets=lambda current, folder: [preset, other],
        settings_file=tmp_path / "config" / "settings.toml",
    )
    APPS.append(app)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            engine = await running(pilot, app)
            await pilot.press("n")
            await wait_for(pilot, lambda: app.settings.preset == other, 60.0, "the swap")
            assert app.engine is engine and app.engine_state == "running"  # no restart
            assert engine.stats().preset == "other"
            assert "preset other" in shown(app, StatusLine)
            assert engine.stats().preset_swap_seconds is not None
            log = app.jam_screen.log_pane
            await wait_for(pilot, lambda: any("took over" in x for x in log.lines), 5.0, "log")
            await quit_and_wait(pilot, app)
        assert load_settings(tmp_path / "config" / "settings.toml")[0].jam.preset == other

    asyncio.run(scenario())
