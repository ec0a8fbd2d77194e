"""The jam's Textual app: it runs the session and holds its state; the stage shows it.

The app drives an engine it is given (`engine_factory(settings, controls)`, in production
livegen.engine.JamEngine -- the same engine `livegen jam --headless` runs). It reads the
engine's snapshots (stats, roll, log) about 15 times a second and calls its setters when a key
is pressed; starting and stopping the engine (loading a model, opening ports, finishing the
recording) happen in worker threads. Nothing here waits on the decode worker or the audio
callback, so a slow redraw can never make the music late.

The session's state (settings, controls, engine state, stats, roll, problems, the computer
keyboard) lives in reactive attributes. The stage (jam_screen.py) is bound to them: setting
one is all it takes to update what shows it, and a value equal to the last fires nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Protocol

import mido
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen

from livegen.controls import Controls, JamSettings, RollNote, Stats
from livegen.kernels.errors import LivegenError
from livegen.models.preset import load_preset
from livegen.settings_file import (
    KeyboardSettings,
    SavedSettings,
    back_up_settings,
    save_settings,
    settings_path,
)
from livegen.tui.controls_panel import nudged
from livegen.tui.devices import Lister, list_devices
from livegen.tui.jam_screen import ROLL_SECONDS, JamScreen
from livegen.tui.keyboard import ComputerKeyboard
from livegen.tui.pianoroll import RollFrame
from livegen.tui.preset_info import PresetInfo, available_presets, describe_preset, short_bench
from livegen.tui.screens import SetupResult, SetupScreen

POLL_HZ = 15  # snapshots per second: smooth enough for a roll, cheap for the UI thread
QUIET_STATES = ("starting", "failed")  # no engine: its last problems are not shown


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
    def swap_preset(self, name: str) -> None: ...
    def now(self) -> float: ...
    def stats(self) -> Stats: ...
    def roll(self, since: float) -> list[RollNote]: ...
    def drain_log(self) -> list[str]: ...
    def snapshot(
        self, seconds: float
    ) -> tuple[Stats, float, list[RollNote], list[str], Controls]: ...


EngineFactory = Callable[[JamSettings, Controls], Engine]


class JamApp(App):
    """`livegen`: the jam. Give it the settings and a way to make an engine."""

    TITLE = "livegen"
    BINDINGS = [
        Binding("ctrl+q", "quit", "quit", priority=True),
        Binding("ctrl+c", "quit", "quit", priority=True, show=False),
    ]

    # The session's state; JamScreen binds its own attributes of the same names to these.
    settings: var[JamSettings] = var(JamSettings)  # this session's wiring
    controls: var[Controls] = var(Controls)
    engine_state: var[str] = var("starting")
    start_problem: var[str | None] = var(None)  # why the engine did not start
    stats: var[Stats] = var(Stats)  # the engine's, as of the last poll
    roll: var[RollFrame] = var(RollFrame)
    keyboard_settings: var[KeyboardSettings] = var(KeyboardSettings)
    last_pitch: var[int | None] = var(None)  # the computer keyboard's last key
    problems: var[tuple[str, ...]] = var(tuple)  # computed: the banner's lines

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
        self.notes = list(notes)  # settings-file messages, shown until the session ends
        self.saved = saved  # what the settings file says (command-line overrides excluded)
        self.keyboard = ComputerKeyboard(dataclasses.replace(saved.keyboard))
        self.set_reactive(JamApp.settings, settings or saved.jam)
        self.set_reactive(JamApp.controls, controls or saved.controls)
        self.set_reactive(JamApp.keyboard_settings, dataclasses.replace(saved.keyboard))
        self.engine_factory = engine_factory
        self.engine: Engine | None = None
        self.lister = lister
        self.describe = describe
        self.bench = bench
        self.presets = presets
        self.settings_file = settings_file
        self.poll_hz = poll_hz
        self.process_log = process_log  # where the engine's processes print (launch.py)
        self.mode_touched = False
        self.stage_gone = False
        self.bench_cache: dict[str, str] = {}
        self.settings_kept = False  # the unreadable settings file was copied aside
        self.swap_to: tuple[str, str] | None = None  # a preset swap asked for: (as asked, name)

    def compute_problems(self) -> tuple[str, ...]:
        """The banner: why the engine did not start, the settings file's notes, the engine's
        problems, and why xruns may come (a sound server without real-time scheduling),
        rather than a silent count."""
        problems = list(self.notes)
        if self.start_problem:
            problems.insert(0, f"{self.start_problem} — press F2 to pick another set-up")
        if self.engine_state not in QUIET_STATES:
            problems += self.stats.problems
            if self.stats.scheduling:
                problems.append(self.stats.scheduling)
        return tuple(problems)

    def get_default_screen(self) -> Screen:
        app = JamApp
        return JamScreen().data_bind(
            app.engine_state,
            app.settings,
            app.controls,
            app.stats,
            app.keyboard_settings,
            app.last_pitch,
            app.problems,
            app.roll,
        )

    @property
    def jam_screen(self) -> JamScreen:
        return self.screen_stack[0]  # type: ignore[return-value]

    def stage_up(self) -> bool:
        """Whether the stage screen is there to draw on (timers and workers may fire while
        the app is closing, after its screens are gone)."""
        stack = self.screen_stack
        return not self.stage_gone and bool(stack) and isinstance(stack[0], JamScreen)

    def write_log(self, *lines: str) -> None:
        if self.stage_up():
            self.jam_screen.write_log(lines)

    def begin(self) -> None:
        """Called once the stage screen is up: show the notes, start the engine, poll."""
        self.write_log(*self.notes)
        if self.process_log is not None:
            self.write_log(f"messages from the model and sound: {self.process_log}")
        self.start_engine(self.settings)
        self.set_interval(1.0 / self.poll_hz, self.poll)

    # the engine's life, off the UI thread --------------------------------------------------
    @work(thread=True, exclusive=True, group="engine")
    def start_engine(self, settings: JamSettings) -> None:
        old, self.engine = self.engine, None
        self.call_from_thread(self.engine_changed, "starting", None)
        if old is not None:
            old.stop()
        try:
            engine = self.engine_factory(settings, self.controls)
            engine.start()
        except (LivegenError, ValueError, OSError) as error:
            self.call_from_thread(self.engine_changed, "failed", str(error))
            return
        self.engine = engine
        self.call_from_thread(self.engine_changed, "running", None)

    def engine_changed(self, state: str, problem: str | None) -> None:
        """On the UI thread: the engine started, failed or is starting."""
        if problem:
            self.write_log(f"engine did not start: {problem}")
            self.notify(f"{problem}\nF2 opens the set-up.", severity="error", timeout=10)
        if self.engine is not None:
            self.controls = self.engine.controls
        self.start_problem = problem
        self.engine_state = state

    def poll(self) -> None:
        """Read the engine's snapshot into the reactive state (the UI thread's only regular
        work); the stage redraws what changed, and only that."""
        engine = self.engine
        if engine is None or not self.stage_up():
            return
        stats, now, roll, log, controls = engine.snapshot(ROLL_SECONDS)
        self.controls = controls
        self.stats = stats
        if self.swap_to and stats.preset == self.swap_to[1] and not stats.preset_swap:
            # the swap took over: the status line names the new preset (as it was asked for)
            self.settings = dataclasses.replace(self.settings, preset=self.swap_to[0])
            self.swap_to = None
        self.roll = RollFrame.of(roll, now)
        if log:
            self.write_log(*log)

    # controls ------------------------------------------------------------------------------
    def nudge(self, name: str, direction: int) -> None:
        """One press of control `name`'s key (see controls_panel.nudged)."""
        changes = nudged(self.controls, name, direction, self.stats.tempo_bpm)
        if changes:
            self.change_controls(**changes)

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

    def panic(self) -> None:
        self.keyboard.release_all()  # the engine's panic silences them
        if self.engine is not None:
            self.engine.panic()
        self.write_log("panic: all notes off")

    def keyboard_change(self, what: str, step: int) -> None:
        getattr(self.keyboard, f"shift_{what}")(step)  # octave, velocity, length
        # a copy: the keyboard changes its settings in place, the reactive needs a new value
        self.keyboard_settings = dataclasses.replace(self.keyboard.settings)

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
            self.last_pitch = self.keyboard.last_pitch

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

    # presets mid-jam -------------------------------------------------------------------------
    def preset_names(self) -> list[str]:
        folder = (self.settings_file or settings_path()).parent / "presets"
        return self.presets(self.settings.preset, folder)

    def next_preset(self) -> None:
        """The next preset of the list takes over (see swap_preset)."""
        names = self.preset_names()
        if len(names) < 2:
            self.notify("no other preset to switch to", severity="warning")
            return
        at = names.index(self.settings.preset) if self.settings.preset in names else -1
        self.swap_preset(names[(at + 1) % len(names)])

    def swap_preset(self, name: str) -> None:
        """A running jam keeps playing while `name` loads beside it; the new model takes over
        at the next turn boundary (the engine logs how long the switch took). With no engine
        running, the engine starts again with it."""
        self.saved = dataclasses.replace(
            self.saved, jam=dataclasses.replace(self.saved.jam, preset=name)
        )
        if self.engine is None or self.engine_state != "running":
            self.settings = dataclasses.replace(self.settings, preset=name)
            self.start_engine(self.settings)
            return
        try:
            self.swap_to = (name, load_preset(name).name)
        except LivegenError as error:
            self.notify(str(error), severity="error")
            return
        self.write_log(f"preset {name}: loading beside the playing model")
        self.engine.swap_preset(name)

    # set-up --------------------------------------------------------------------------------
    def open_setup(self) -> None:
        screen = SetupScreen(
            self.settings,
            self.controls.mode,
            lister=self.lister,
            presets=self.preset_names(),
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
        only_preset = dataclasses.replace(result.settings, preset=self.settings.preset)
        if result.settings.preset != self.settings.preset and only_preset == self.settings:
            self.swap_preset(result.settings.preset)  # no restart: the jam plays on
        elif result.settings != self.settings or self.engine is None:
            self.settings = result.settings
            self.write_log("set-up changed: restarting the engine")
            self.start_engine(result.settings)

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
            self.write_log(line)
            self.notify(line, severity="warning", timeout=10)

    async def action_quit(self) -> None:
        self.write_log("stopping: finishing the recording…")
        self.stop_and_exit()

    @work(thread=True, exclusive=True, group="engine")
    def stop_and_exit(self) -> None:
        # it can take a while: say so (reactive attributes are set on the UI thread)
        self.call_from_thread(setattr, self, "engine_state", "stopping")
        # Let go of the engine before stopping it: stop() holds the engine's lock for as long
        # as finishing the recording takes, and a poll on the UI thread would wait for it.
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.stop()
        self.call_from_thread(self.save)
        self.call_from_thread(setattr, self, "engine_state", "stopped")
        self.call_from_thread(self.exit)
