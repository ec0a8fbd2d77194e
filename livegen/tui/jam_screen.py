"""The stage: piano roll, meters, controls, status, problems and log. Every control is one key.

The stage holds the jam's state as reactive attributes, bound to the app's (JamApp makes it
with data_bind), and binds each widget to the part it shows. A value set on the app flows
down to the widgets that show it, and only a changed value does: nothing here is redrawn by
hand, and nothing is redrawn while its data stays the same (issue 20: the UI's redraws made
the sound late). Keys are actions that call the app's public methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Log, Static

from livegen.controls import Controls, JamSettings, Mode, Stats
from livegen.settings_file import KeyboardSettings
from livegen.tui.controls_panel import CONTROL_KEYS, ControlsPanel
from livegen.tui.keyboard import KEY_OFFSETS
from livegen.tui.meters import Meters
from livegen.tui.pianoroll import PianoRoll, RollFrame
from livegen.tui.screens import HelpScreen
from livegen.tui.status import Legend, ProblemsBanner, StatusLine

if TYPE_CHECKING:
    from livegen.tui.app import JamApp

ROLL_SECONDS = 8.0
LOG_LINES = 500
NARROW_COLUMNS = 100  # below this the controls panel drops its key column
SHORT_ROWS = 32  # below this the log pane shrinks
HINT = "keys a–' play · F1 help · F2 set-up · Esc panic · r record · Ctrl+Q quit"


class JamScreen(Screen):
    """The stage. Its reactive attributes are what it shows; set them (or bind them, as
    JamApp does) and the widgets showing them follow."""

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
    JamScreen.short #log { height: 4; }
    #hint { height: 1; background: $panel; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding(key, action, show=False) for k in CONTROL_KEYS for key, action in k.bindings
    ]

    app: JamApp

    engine_state: var[str] = var("starting")
    settings: var[JamSettings] = var(JamSettings)
    controls: var[Controls] = var(Controls)
    mode: var[Mode] = var(Mode.CONTINUE)  # computed from controls: the status line shows it
    stats: var[Stats] = var(Stats)
    keyboard_settings: var[KeyboardSettings] = var(KeyboardSettings)
    last_pitch: var[int | None] = var(None)
    problems: var[tuple[str, ...]] = var(tuple)
    roll: var[RollFrame] = var(RollFrame)
    narrow: var[bool] = var(False)  # a narrow terminal: the controls without their keys
    short: var[bool] = var(False, toggle_class="short")  # a short one: a shorter log

    preset_swap: var[str | None] = var(None)  # computed from stats: a swap on its way

    def compute_mode(self) -> Mode:
        return self.controls.mode

    def compute_preset_swap(self) -> str | None:
        return self.stats.preset_swap

    def compose(self) -> ComposeResult:
        cls = JamScreen
        yield StatusLine(id="status").data_bind(
            cls.engine_state, cls.settings, cls.mode, cls.preset_swap
        )
        yield ProblemsBanner(id="problems").data_bind(cls.problems)
        with Horizontal(id="main"):
            with Vertical(id="left"):
                roll = PianoRoll(ROLL_SECONDS, id="roll").data_bind(frame=cls.roll)
                roll.border_title = "piano roll"
                yield roll
                yield Legend(id="legend").data_bind(cls.last_pitch)
                yield Meters(id="meters").data_bind(cls.stats, cls.controls)
            panel = ControlsPanel(id="controls").data_bind(
                cls.controls, cls.narrow, keyboard=cls.keyboard_settings
            )
            panel.border_title = "controls"
            yield panel
        log = Log(max_lines=LOG_LINES, id="log")
        log.border_title = "log"
        yield log
        yield Static(HINT, id="hint")

    def on_mount(self) -> None:
        self.app.begin()

    def on_resize(self, event: events.Resize) -> None:
        self.narrow = event.size.width < NARROW_COLUMNS
        self.short = event.size.height < SHORT_ROWS  # the piano roll keeps its room

    def on_unmount(self) -> None:
        self.app.stage_gone = True

    @property
    def log_pane(self) -> Log:
        return self.query_one("#log", Log)

    def write_log(self, lines: Iterable[str]) -> None:
        """Add lines to the log pane (a stream, not a state: the one thing written here)."""
        self.log_pane.write_lines(lines)

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
        self.app.nudge(name, direction)

    def action_panic(self) -> None:
        self.app.panic()

    def action_keyboard(self, what: str, step: int) -> None:
        self.app.keyboard_change(what, step)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_setup(self) -> None:
        self.app.open_setup()

    def action_next_preset(self) -> None:
        self.app.next_preset()
