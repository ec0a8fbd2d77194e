"""The jam's Textual app: one screen to play on, a set-up screen, a help screen.

The app drives an engine it is given (`engine_factory(settings, controls)`, in production
livegen.engine.JamEngine -- the same engine `livegen jam --headless` runs). It reads the
engine's snapshots (stats, roll, log) about 15 times a second and calls its setters when a key
is pressed; starting and stopping the engine (loading a model, opening ports, finishing the
recording) happen in worker threads. Nothing here waits on the decode worker or the audio
callback, so a slow redraw can never make the music late.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Protocol

import mido
from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Log, Static

from livegen.controls import Controls, JamSettings, RollNote, Stats
from livegen.kernels.errors import LivegenError
from livegen.settings_file import (
    SavedSettings,
    back_up_settings,
    save_settings,
    settings_path,
)
from livegen.tui.controls_panel import CONTROL_KEYS, MODE_NAMES, ControlsPanel, nudged
from livegen.tui.devices import Lister, list_devices
from livegen.tui.keyboard import KEY_OFFSETS, ComputerKeyboard, note_name
from livegen.tui.meters import Meters
from livegen.tui.pianoroll import MODEL_COLOUR, PLAYER_COLOUR, PianoRoll
from livegen.tui.preset_info import PresetInfo, available_presets, describe_preset, short_bench
from livegen.tui.screens import HelpScreen, SetupResult, SetupScreen

POLL_HZ = 15  # redraws per second: smooth enough for a roll, cheap for the UI thread
ROLL_SECONDS = 8.0
LOG_LINES = 500
NARROW_COLUMNS = 100  # below this the controls panel drops its key column
SHORT_ROWS = 32  # below this the log pane shrinks


class Engine(Protocol):
    """What the UI needs of the jam engine: livegen.engine.JamEngine's methods, and snapshot()
    (livegen.tui.engine_host.EngineProcess: one poll's reads in one round trip)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    @property
    def controls(self) -> Controls: ...
    def set_controls(self, **changes) -> Controls: ...
    def play(self, message: mido.Message) -> None: ...
    def panic(self) -> None: ...
    def now(self) -> float: ...
    def stats(self) -> Stats: ...
    def roll(self, since: float) -> list[RollNote]: ...
    def drain_log(self) -> list[str]: ...
    def snapshot(
        self, seconds: float
    ) -> tuple[Stats, float, list[RollNote], list[str], Controls]: ...


EngineFactory = Callable[[JamSettings, Controls], Engine]


def describe_port(value: str | None, kind: str) -> str:
    if value in (None, "none"):
        return "computer keyboard" if kind == "in" else "none"
    if value == "virtual":
        return f"livegen {kind} (virtual)"
    return value


class JamScreen(Screen):
    """The stage: piano roll, meters, controls, log. Every control is one key."""

    DEFAULT_CSS = """
    #status { height: 1; background: $panel; padding: 0 1; }
    #problems { height: auto; color: $warning; padding: 0 1; display: none; }
    #problems.shown { display: block; }
    #main { height: 1fr; }
    #left { width: 1fr; }
    #legend { height: 1; padding: 0 1; }
    PianoRoll { border: round $panel-lighten-2; }
    ControlsPanel { border: round $panel-lighten-2; }
    #log { height: 7; border: round $panel-lighten-2; }
    #hint { height: 1; background: $panel; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding(key, action, show=False) for k in CONTROL_KEYS for key, action in k.bindings
    ]

    app: JamApp

    def __init__(self) -> None:
        super().__init__()
        # Kept as attributes: the poll draws on them 15 times a second without a query.
        self.status = Static("", id="status")
        self.problems = Static("", id="problems")
        self.roll = PianoRoll(ROLL_SECONDS, id="roll")
        self.legend = Static("", id="legend")
        self.meters = Meters(id="meters")
        self.controls_panel = ControlsPanel(id="controls")
        self.log_pane = Log(max_lines=LOG_LINES, id="log")

    def compose(self) -> ComposeResult:
        yield self.status
        yield self.problems
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield self.roll
                yield self.legend
                yield self.meters
            yield self.controls_panel
        yield self.log_pane
        yield Static(
            "keys a–' play · F1 help · F2 set-up · Esc panic · r record · Ctrl+Q quit",
            id="hint",
        )

    def _legend(self) -> Text:
        text = Text()
        text.append("■ you", style=PLAYER_COLOUR)
        text.append("   ")
        text.append("■ model", style=MODEL_COLOUR)
        last = self.app.keyboard.last_pitch
        if last is not None:
            text.append("   last key ", style="dim")
            text.append(note_name(last), style="bold")
        return text

    def on_mount(self) -> None:
        self.roll.border_title = "piano roll"
        self.controls_panel.border_title = "controls"
        self.log_pane.border_title = "log"
        self.show_controls()
        self.show_status()
        self.app.begin()

    def on_resize(self, event: events.Resize) -> None:
        # a short terminal: a shorter log, so the piano roll keeps its room
        self.log_pane.styles.height = 4 if event.size.height < SHORT_ROWS else 7
        narrow = event.size.width < NARROW_COLUMNS
        if narrow != self.controls_panel.has_class("narrow"):
            self.controls_panel.set_class(narrow, "narrow")
            self.show_controls()

    def on_unmount(self) -> None:
        self.app.stage_gone = True

    # drawing -------------------------------------------------------------------------------
    def show_controls(self) -> None:
        self.controls_panel.show(self.app.controls, self.app.keyboard)

    def show_status(self) -> None:
        app = self.app
        s = app.settings
        audio = s.audio_device or "default"
        text = Text()
        text.append("livegen ", style="bold")
        # the engine's state first: a narrow terminal cuts the end of the line, not this
        style = {"running": "bold green", "failed": "bold red"}.get(app.engine_state, "bold yellow")
        text.append(f"● {app.engine_state}", style=style)
        for label, value in (
            ("preset", Path(s.preset).stem if s.preset.endswith(".toml") else s.preset),
            ("mode", MODE_NAMES[app.controls.mode]),
            ("in", describe_port(s.input, "in")),
            ("out", describe_port(s.output, "out")),
            ("audio", audio),
        ):
            text.append(f"  {label} ", style="dim")
            text.append(value)
        self.status.update(text)
        self.legend.update(self._legend())

    def show_problems(self, problems: Sequence[str]) -> None:
        banner = self.problems
        banner.set_class(bool(problems), "shown")
        banner.update(Text("\n".join(f"⚠ {p}" for p in problems)))

    def show_engine(self, stats: Stats, roll: list[RollNote], now: float, log: list[str]) -> None:
        self.roll.show(roll, now)
        self.meters.show(stats, self.app.controls)
        if log:
            self.log_pane.write_lines(log)

    def write_log(self, line: str) -> None:
        self.log_pane.write_line(line)

    # the computer keyboard -----------------------------------------------------------------
    def on_key(self, event: events.Key) -> None:
        char = event.character
        if char is not None and char.isalpha():
            char = char.lower()  # Caps Lock on stage must not silence the keyboard
        if char is None or char not in KEY_OFFSETS:
            return
        event.stop()
        event.prevent_default()
        self.app.press_key(char)

    # actions -------------------------------------------------------------------------------
    def action_nudge(self, name: str, direction: int) -> None:
        changes = nudged(self.app.controls, name, direction, self.app.last_stats.tempo_bpm)
        if changes:
            self.app.change_controls(**changes)

    def action_panic(self) -> None:
        self.app.panic()

    def action_keyboard(self, what: str, step: int) -> None:
        self.app.keyboard_change(what, step)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_setup(self) -> None:
        self.app.open_setup()


class JamApp(App):
    """`livegen`: the jam. Give it the settings and a way to make an engine."""

    TITLE = "livegen"
    BINDINGS = [
        Binding("ctrl+q", "quit", "quit", priority=True),
        Binding("ctrl+c", "quit", "quit", priority=True, show=False),
    ]

    def __init__(
        self,
        saved: SavedSettings,
        *,
        engine_factory: EngineFactory,
        settings: JamSettings | None = None,
        controls: Controls | None = None,
        notes: Sequence[str] = (),
        lister: Lister = list_devices,
        describe: Callable[[str], PresetInfo] = describe_preset,
        bench: Callable[[str], str] | None = short_bench,
        presets: Callable[[str, Path | None], list[str]] = available_presets,
        settings_file: Path | None = None,
        poll_hz: float = POLL_HZ,
        process_log: Path | None = None,
    ) -> None:
        super().__init__()
        # Start multiprocessing's resource tracker now: once Textual runs, sys.stderr is its
        # print capture (fileno -1), and the engine's first spawned process would fail to
        # pass that to the tracker ("bad value(s) in fds_to_keep").
        resource_tracker.ensure_running()
        self.saved = saved  # what the settings file says (command-line overrides excluded)
        self.settings = settings or saved.jam  # this session's wiring
        self.controls = controls or saved.controls
        self.keyboard = ComputerKeyboard(dataclasses.replace(saved.keyboard))
        self.engine_factory = engine_factory
        self.engine: Engine | None = None
        self.engine_state = "starting"
        self.notes = list(notes)  # settings-file messages, shown until the session ends
        self.start_problem: str | None = None
        self.lister = lister
        self.describe = describe
        self.bench = bench
        self.presets = presets
        self.settings_file = settings_file
        self.poll_hz = poll_hz
        self.process_log = process_log  # where the engine's processes print (launch.py)
        self.mode_touched = False
        self.last_stats = Stats()
        self.stage_gone = False
        self.bench_cache: dict[str, str] = {}
        self.settings_kept = False  # the unreadable settings file was copied aside

    def get_default_screen(self) -> Screen:
        return JamScreen()

    @property
    def jam_screen(self) -> JamScreen:
        return self.screen_stack[0]  # type: ignore[return-value]

    def stage_up(self) -> bool:
        """Whether the stage screen is there to draw on (timers and workers may fire while
        the app is closing, after its screens are gone)."""
        stack = self.screen_stack
        return not self.stage_gone and bool(stack) and isinstance(stack[0], JamScreen)

    def begin(self) -> None:
        """Called once the stage screen is up: show the notes, start the engine, poll."""
        for note in self.notes:
            self.jam_screen.write_log(note)
        if self.process_log is not None:
            self.jam_screen.write_log(f"messages from the model and sound: {self.process_log}")
        self.show_problems([])
        self.start_engine(self.settings)
        self.set_interval(1.0 / self.poll_hz, self.poll)

    # the engine's life, off the UI thread --------------------------------------------------
    @work(thread=True, exclusive=True, group="engine")
    def start_engine(self, settings: JamSettings) -> None:
        old, self.engine = self.engine, None
        self.call_from_thread(self._engine_state, "starting", None)
        if old is not None:
            old.stop()
        try:
            engine = self.engine_factory(settings, self.controls)
            engine.start()
        except (LivegenError, ValueError, OSError) as error:
            self.call_from_thread(self._engine_state, "failed", str(error))
            return
        self.engine = engine
        self.call_from_thread(self._engine_state, "running", None)

    def _engine_state(self, state: str, problem: str | None) -> None:
        self.engine_state = state
        self.start_problem = problem
        if not self.stage_up():
            return
        if problem:
            self.jam_screen.write_log(f"engine did not start: {problem}")
            self.notify(f"{problem}\nF2 opens the set-up.", severity="error", timeout=10)
        if self.engine is not None:
            self.controls = self.engine.controls
            self.jam_screen.show_controls()
        self.jam_screen.show_status()
        if self.engine is not None:
            self.show_problems(self.last_stats.problems, self.last_stats.scheduling)
        else:
            self.show_problems([])

    def show_problems(self, engine_problems: Sequence[str], scheduling: str | None = None) -> None:
        """The banner: the settings file's notes, the engine's problems, and why xruns may
        come (a sound server without real-time scheduling), rather than a silent count."""
        problems = self.notes + list(engine_problems) + ([scheduling] if scheduling else [])
        if self.start_problem:
            problems.insert(0, f"{self.start_problem} — press F2 to pick another set-up")
        self.jam_screen.show_problems(problems)

    def poll(self) -> None:
        """Read the engine's snapshots and redraw (the UI thread's only regular work)."""
        engine = self.engine
        if engine is None or not self.stage_up():
            return
        stats, now, roll, log, controls = engine.snapshot(ROLL_SECONDS)
        screen = self.jam_screen
        if controls != self.controls:
            self.controls = controls
            screen.show_controls()
            screen.show_status()
        last = self.last_stats
        if (stats.problems, stats.scheduling) != (last.problems, last.scheduling):
            self.show_problems(stats.problems, stats.scheduling)
        self.last_stats = stats
        screen.show_engine(stats, roll, now, log)

    # controls ------------------------------------------------------------------------------
    def change_controls(self, **changes) -> None:
        if "mode" in changes:
            self.mode_touched = True
        try:
            if self.engine is not None:
                self.controls = self.engine.set_controls(**changes)
            else:  # kept for when the engine starts
                self.controls = self.controls.changed(**changes)
        except ValueError as error:
            self.notify(str(error), severity="warning")
            return
        self.jam_screen.show_controls()
        if "mode" in changes:
            self.jam_screen.show_status()

    def panic(self) -> None:
        self.keyboard.release_all()  # the engine's panic silences them
        if self.engine is not None:
            self.engine.panic()
        self.jam_screen.write_log("panic: all notes off")

    def keyboard_change(self, what: str, step: int) -> None:
        getattr(self.keyboard, f"shift_{what}")(step)  # octave, velocity, length
        self.jam_screen.show_controls()

    # the computer keyboard -----------------------------------------------------------------
    def press_key(self, char: str) -> None:
        engine = self.engine
        if engine is None:
            self.notify("the engine is not running yet", severity="warning", timeout=2)
            return
        now = engine.now()
        messages = self.keyboard.press(char, now)
        for message in messages:
            engine.play(message)
        if messages:
            self.set_timer(self.keyboard.settings.note_seconds, self.release_due)
            self.jam_screen.show_status()

    def release_due(self) -> None:
        engine = self.engine
        if engine is None:
            self.keyboard.release_all()
            return
        now = engine.now()
        for message in self.keyboard.due(now):
            engine.play(message)
        following = self.keyboard.next_due()
        if following is not None:  # a held (repeating) key moved its end later
            self.set_timer(max(0.001, following - now), self.release_due)

    # set-up --------------------------------------------------------------------------------
    def open_setup(self) -> None:
        folder = (self.settings_file or settings_path()).parent / "presets"
        screen = SetupScreen(
            self.settings,
            self.controls.mode,
            lister=self.lister,
            presets=self.presets(self.settings.preset, folder),
            describe=self.describe,
            bench=self.bench,
            bench_cache=self.bench_cache,
        )
        self.push_screen(screen, self.apply_setup)

    def apply_setup(self, result: SetupResult | None) -> None:
        if result is None:
            return
        if result.mode != self.controls.mode:
            self.change_controls(mode=result.mode)
        self.saved = dataclasses.replace(
            self.saved, jam=result.settings, controls=self.persisted_controls()
        )
        self.save()
        if result.settings != self.settings or self.engine is None:
            self.settings = result.settings
            self.jam_screen.write_log("set-up changed: restarting the engine")
            self.start_engine(result.settings)
        self.jam_screen.show_status()

    # leaving -------------------------------------------------------------------------------
    def persisted_controls(self) -> Controls:
        """The controls to save: as left, except a --mode from the command line is not saved
        unless the mode was changed in the UI."""
        if self.mode_touched:
            return self.controls
        return dataclasses.replace(self.controls, mode=self.saved.controls.mode)

    def save(self) -> Path | None:
        saved = SavedSettings(
            jam=self.saved.jam,
            controls=self.persisted_controls(),
            keyboard=self.keyboard.settings,
        )
        try:
            self.keep_unread_settings()
            return save_settings(saved, self.settings_file)
        except (OSError, LivegenError) as error:
            self.notify(f"settings not saved: {error}", severity="error")
            return None

    def keep_unread_settings(self) -> None:
        """A settings file that had problems is copied aside before the first save, and
        the screen says where (the user's own text is never lost to a rewrite)."""
        if not self.notes or self.settings_kept:
            return
        self.settings_kept = True
        kept = back_up_settings(self.settings_file)
        if kept is not None:
            line = f"your settings file had problems; it is kept as {kept}"
            if self.stage_up():
                self.jam_screen.write_log(line)
            self.notify(line, severity="warning", timeout=10)

    async def action_quit(self) -> None:
        self.jam_screen.write_log("stopping: finishing the recording…")
        self.stop_and_exit()

    @work(thread=True, exclusive=True, group="engine")
    def stop_and_exit(self) -> None:
        self.engine_state = "stopping"
        self.call_from_thread(self.jam_screen.show_status)  # it can take a while: say so
        # Let go of the engine before stopping it: stop() holds the engine's lock for as long
        # as finishing the recording takes, and a poll on the UI thread would wait for it.
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.stop()
        self.call_from_thread(self.save)
        self.engine_state = "stopped"
        self.call_from_thread(self.exit)
