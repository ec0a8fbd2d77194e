"""The set-up screen (ports, audio, preset, mode, sound) and the help screen.

The set-up screen lists devices and describes presets in worker threads, so a slow MIDI system
or a preset bench never freezes the UI. It returns a SetupResult, or None when cancelled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from livegen.controls import JamSettings, Mode
from livegen.tui.controls_panel import CONTROL_KEYS, MODE_NAMES, MODES
from livegen.tui.devices import DeviceLists, Lister, audio_device_name
from livegen.tui.keyboard import REPEAT_GAP
from livegen.tui.preset_info import PresetInfo

DEVICE_POLL_S = 1.5  # how often the pickers look for ports that came or went

INPUT_SPECIAL = [
    ("computer keyboard only", "none"),
    ('virtual port "livegen in"', "virtual"),
]
OUTPUT_SPECIAL = [("no MIDI out", "none"), ('virtual port "livegen out"', "virtual")]
AUDIO_SPECIAL = [("default device", "default"), ("no audio (MIDI only)", "none")]


@dataclass(frozen=True)
class SetupResult:
    settings: JamSettings
    mode: Mode


def picker_options(
    special: list[tuple[str, str]],
    found: tuple[str, ...],
    current: str,
    value_of: Callable[[str], str] = str,
) -> list[tuple[str, str]]:
    """The special choices, the devices found, and the current choice even when it is gone
    (marked, so a keyboard unplugged for a moment does not silently change the set-up)."""
    options = list(special) + [(name, value_of(name)) for name in found]
    if current not in {value for _, value in options}:
        options.append((f"{current} (not present now)", current))
    return options


class SetupScreen(ModalScreen[SetupResult | None]):
    DEFAULT_CSS = """
    SetupScreen { align: center middle; }
    #setup { width: 100; max-width: 100%; height: auto; max-height: 100%;
             border: thick $accent; padding: 0 1; background: $surface; }
    #setup .row { height: auto; margin: 0 0 1 0; }
    #setup .name { width: 12; }
    #setup Select, #setup Input { width: 1fr; }
    #preset-info { padding: 0 0 1 12; height: auto; color: $text-muted; }
    #device-problems { color: $warning; height: auto; }
    #buttons { height: auto; align: right middle; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("f10", "apply", "jam"),
    ]

    def __init__(
        self,
        settings: JamSettings,
        mode: Mode,
        *,
        lister: Lister,
        presets: list[str],
        describe: Callable[[str], PresetInfo],
        bench: Callable[[str], str] | None,
        bench_cache: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.mode = mode
        self.lister = lister
        self.presets = presets
        self.describe = describe
        self.bench = bench
        self.devices = DeviceLists()
        self.offered: dict[str, list[tuple[str, str]]] = {}  # by picker id: (label, value)
        # verdicts by preset, kept by the app: a bench runs once per preset per session
        self.benched: dict[str, str] = {} if bench_cache is None else bench_cache

    def compose(self) -> ComposeResult:
        s = self.settings
        audio = s.audio_device if s.audio_device else "default"
        with VerticalScroll(id="setup"):
            yield Label(Text("Set-up", style="bold"))
            yield self._row("MIDI in", self._select("input", INPUT_SPECIAL, (), s.input))
            yield self._row("MIDI out", self._select("output", OUTPUT_SPECIAL, (), s.output))
            yield self._row("audio", self._select("audio", AUDIO_SPECIAL, (), str(audio)))
            preset_options = [(name, name) for name in self.presets] or [(s.preset, s.preset)]
            if s.preset not in {v for _, v in preset_options}:
                preset_options.insert(0, (s.preset, s.preset))
            yield self._row("preset", self._picker("preset", preset_options, s.preset))
            yield Static("", id="preset-info")
            modes = [(MODE_NAMES[m], m.value) for m in MODES]
            yield self._row("mode", self._picker("mode", modes, self.mode.value))
            soundfont = Input(
                s.soundfont or "",
                placeholder="the preset's soundfont",
                id="soundfont",
                compact=True,
            )
            yield self._row("soundfont", soundfont)
            program = "" if s.program is None else str(s.program)
            yield self._row(
                "program",
                Input(
                    program,
                    placeholder="the preset's GM program (0-127)",
                    id="program",
                    compact=True,
                ),
            )
            yield Static("", id="device-problems")
            with Horizontal(id="buttons"):
                yield Button("Jam  F10", variant="primary", id="apply", compact=True)
                yield Button("Cancel  Esc", id="cancel", compact=True)

    def _row(self, name: str, widget) -> Horizontal:
        return Horizontal(Label(name, classes="name"), widget, classes="row")

    def _select(self, widget_id, special, found, current) -> Select:
        return self._picker(widget_id, picker_options(special, found, current), current)

    def _picker(self, widget_id: str, options: list[tuple[str, str]], current: str) -> Select:
        self.offered[widget_id] = options
        return Select(options, value=current, allow_blank=False, id=widget_id, compact=True)

    def choices(self, picker_id: str) -> list[tuple[str, str]]:
        """What picker `picker_id` (input, output, audio, preset, mode) offers now, as
        (label, value) pairs."""
        return list(self.offered[picker_id])

    def on_mount(self) -> None:
        self._poll_devices()
        self.set_interval(DEVICE_POLL_S, self._poll_devices)
        self._show_preset(self.settings.preset)

    # devices -------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="devices")
    def _poll_devices(self) -> None:
        devices = self.lister(self.settings.api)
        self.app.call_from_thread(self._apply_devices, devices)

    def _apply_devices(self, devices: DeviceLists) -> None:
        if devices == self.devices:
            return
        self.devices = devices
        for widget_id, special, found, value_of in (
            ("input", INPUT_SPECIAL, devices.inputs, str),
            ("output", OUTPUT_SPECIAL, devices.outputs, str),
            ("audio", AUDIO_SPECIAL, devices.audio, audio_device_name),
        ):
            select = self.query_one(f"#{widget_id}", Select)
            current = select.value
            options = picker_options(special, found, str(current), value_of)
            self.offered[widget_id] = options
            select.set_options(options)
            select.value = current
        self.query_one("#device-problems", Static).update(Text("\n".join(devices.problems)))

    # presets -------------------------------------------------------------------------------
    @on(Select.Changed, "#preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._show_preset(event.value)

    def _show_preset(self, name: str) -> None:
        self.query_one("#preset-info", Static).update("reading the preset…")
        self._describe_preset(name)

    @work(thread=True, exclusive=True, group="preset")
    def _describe_preset(self, name: str) -> None:
        info = self.describe(name)
        self.app.call_from_thread(self._show_info, name, info, self.benched.get(name))
        if info.problem is None and self.bench is not None and name not in self.benched:
            self.app.call_from_thread(self._show_info, name, info, "real time: measuring…")
            self.benched[name] = self.bench(name)
            self.app.call_from_thread(self._show_info, name, info, self.benched[name])

    def _show_info(self, name: str, info: PresetInfo, bench: str | None) -> None:
        if self.query_one("#preset", Select).value != name:
            return  # the musician has moved on to another preset
        lines = info.lines() + ([bench] if bench else [])
        style = "red" if info.problem else ""
        self.query_one("#preset-info", Static).update(Text("\n".join(lines), style=style))

    # result --------------------------------------------------------------------------------
    def result(self) -> SetupResult:
        """The settings as the screen shows them now (ValueError for a bad program number)."""
        values = {k: self.query_one(f"#{k}", Select).value for k in ("input", "output", "audio")}
        audio = values["audio"]
        program_text = self.query_one("#program", Input).value.strip()
        program = None
        if program_text:
            if not program_text.isdigit() or not 0 <= int(program_text) <= 127:
                raise ValueError(f"program must be a number 0-127, got {program_text!r}")
            program = int(program_text)
        soundfont = self.query_one("#soundfont", Input).value.strip() or None
        settings = dataclasses.replace(
            self.settings,
            input=str(values["input"]),
            output=str(values["output"]),
            audio_device=None if audio == "default" else str(audio),
            preset=str(self.query_one("#preset", Select).value),
            soundfont=soundfont,
            program=program,
        )
        return SetupResult(settings, Mode(str(self.query_one("#mode", Select).value)))

    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        try:
            result = self.result()
        except ValueError as error:
            self.notify(str(error), severity="error")
            return
        self.dismiss(result)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


KEYBOARD_PICTURE = """\
  w e   t y u   o p         black keys
 a s d f g h j k l ; '      white keys
 C D E F G A B C D E F      (A plays C of the octave shown)"""


def help_text() -> Text:
    text = Text()
    text.append("livegen — keys\n\n", style="bold")
    text.append("Play with the computer keyboard\n", style="bold #4fc3f7")
    text.append(KEYBOARD_PICTURE + "\n\n")
    text.append(
        "Terminals report key presses, never releases, so each press plays a note of a fixed\n"
        "length (the 'note length' control, , and .). Holding a key makes the terminal\n"
        f"repeat it: a repeat within {REPEAT_GAP * 1000:.0f} ms of the last one keeps the note "
        "sounding\ninstead of striking it again; a fresh press strikes it again.\n\n"
    )
    text.append("Controls (they act at once, while you play)\n", style="bold #4fc3f7")
    for key in CONTROL_KEYS:
        text.append(f"  {key.keys:<9}", style="bold")
        text.append(f"{key.what}\n")
    text.append(
        "\nThe piano roll shows your notes in blue and the model's in orange.\n"
        "Settings are saved when you leave; a set-up change is saved when you press Jam.\n"
    )
    text.append("Esc, F1 or ? closes this help.", style="dim")
    return text


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: 96; max-width: 100%; height: auto; max-height: 100%;
            border: thick $accent; padding: 0 1; background: $surface; }
    """

    BINDINGS = [
        Binding("escape", "close", "close"),
        Binding("f1", "close", "close"),
        Binding("question_mark", "close", "close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"), VerticalScroll():
            yield Static(help_text())

    def action_close(self) -> None:
        self.dismiss(None)
