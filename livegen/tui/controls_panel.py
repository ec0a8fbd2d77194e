"""What each control key does, and the panel that shows the controls' values beside their keys.

`nudged` is the one place that says how far a key press moves a control, so the keys, the
panel and the help screen cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from livegen.controls import ClockSource, Controls, Mode
from livegen.link_clock import link_available
from livegen.settings_file import KeyboardSettings
from livegen.tui.keyboard import note_name

RESPONSE_SECONDS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 60.0)
MODES = (Mode.CONTINUE, Mode.CALL, Mode.ACCOMPANY)
MODE_NAMES = {Mode.CONTINUE: "continue", Mode.CALL: "call & response", Mode.ACCOMPANY: "accompany"}
REGISTER_MIN_WIDTH = 12
NUDGE_STEP_MS = 5.0


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _ladder(values: tuple[float, ...], current: float, direction: int) -> float:
    nearest = min(range(len(values)), key=lambda i: abs(values[i] - current))
    return values[int(_clamp(nearest + direction, 0, len(values) - 1))]


def _next_clock(clock: ClockSource) -> ClockSource:
    """internal -> MIDI -> Link -> internal; Link only where its binding is installed."""
    order = [ClockSource.INTERNAL, ClockSource.MIDI]
    if clock is ClockSource.LINK or link_available():
        order.append(ClockSource.LINK)
    return order[(order.index(clock) + 1) % len(order)]


def nudged(
    controls: Controls, name: str, direction: int, followed_bpm: float | None = None
) -> dict[str, Any]:
    """The changes one press makes to control `name` (direction -1 or +1; toggles ignore it).
    Following Link, the tempo keys step from the session's tempo (`followed_bpm`), which a
    peer may have moved away from livegen's own."""
    c = controls
    if name == "temperature":
        return {"temperature": round(_clamp(c.temperature + 0.05 * direction, 0.05, 5.0), 2)}
    if name == "top_p":
        return {"top_p": round(_clamp(c.top_p + 0.05 * direction, 0.05, 1.0), 2)}
    if name == "density":
        return {"density": round(_clamp(c.density + 0.5 * direction, -10.0, 10.0), 1)}
    if name == "response_seconds":
        return {"response_seconds": _ladder(RESPONSE_SECONDS, c.response_seconds, direction)}
    if name == "tempo_bpm":
        base = followed_bpm if c.clock is ClockSource.LINK and followed_bpm else c.tempo_bpm
        return {"tempo_bpm": _clamp(round(base) + 2 * direction, 20.0, 400.0)}
    if name == "nudge_ms":
        return {"nudge_ms": _clamp(c.nudge_ms + NUDGE_STEP_MS * direction, -500.0, 500.0)}
    if name == "register_shift":  # move the whole register an octave, keeping its width
        shift = int(_clamp(12 * direction, -c.low_pitch, 127 - c.high_pitch))
        return {"low_pitch": c.low_pitch + shift, "high_pitch": c.high_pitch + shift}
    if name == "register_width":  # widen or narrow by half an octave at each end
        low, high = c.low_pitch - 6 * direction, c.high_pitch + 6 * direction
        if high - low < REGISTER_MIN_WIDTH:
            return {}
        return {"low_pitch": max(0, low), "high_pitch": min(127, high)}
    if name == "mode":
        return {"mode": MODES[(MODES.index(c.mode) + 1) % len(MODES)]}
    if name == "clock":
        return {"clock": _next_clock(c.clock)}
    if name in ("passthrough", "quantize", "recording"):
        return {name: not getattr(c, name)}
    raise ValueError(f"no control called {name!r}")


@dataclass(frozen=True)
class KeyHelp:
    """One line of the help: its keys as shown, what they do, the Textual bindings that make
    them (key name, action on the stage), and the panel row that shows their control."""

    keys: str
    what: str
    bindings: tuple[tuple[str, str], ...] = ()
    row: str = ""


# Textual's names for the keys the help shows as characters (a binding cannot say "," raw:
# Textual splits a binding's keys at commas).
KEY_NAMES = {
    "-": "minus",
    "=": "equals_sign",
    "[": "left_square_bracket",
    "]": "right_square_bracket",
    ",": "comma",
    ".": "full_stop",
    "{": "left_curly_bracket",
    "}": "right_curly_bracket",
}


def _steps(shown: str, what: str, name: str, row: str, action: str = "nudge") -> KeyHelp:
    """Two keys, down / up (`shown` is "a / b", as the help prints them), each calling
    action(name, -1 or 1) on the stage."""
    down, up = (KEY_NAMES.get(key, key) for key in shown.split(" / "))
    bindings = ((down, f"{action}('{name}', -1)"), (up, f"{action}('{name}', 1)"))
    return KeyHelp(shown, what, bindings, row)


def _toggle(key: str, what: str, name: str, row: str) -> KeyHelp:
    """One key that moves control `name` on (a toggle, or the next mode)."""
    return KeyHelp(key, what, ((key, f"nudge('{name}', 1)"),), row)


# The one table of the stage's keys: the bindings, the help screen and the panel's key column
# are all made from it, in this order.
CONTROL_KEYS: tuple[KeyHelp, ...] = (
    _toggle("m", "mode: continue → call & response → accompany", "mode", "mode"),
    _steps("1 / 2", "temperature down / up (0.05 steps)", "temperature", "temperature"),
    _steps("3 / 4", "top-p down / up (0.05 steps)", "top_p", "top-p"),
    _steps("5 / 6", "density: sparser / busier", "density", "density"),
    _steps("7 / 8", "response length shorter / longer", "response_seconds", "response"),
    _steps("9 / 0", "register an octave down / up", "register_shift", "register"),
    _steps("- / =", "register narrower / wider", "register_width", "register"),
    _steps("[ / ]", "tempo down / up (2 bpm; with Link, the session's)", "tempo_bpm", "tempo"),
    _steps("{ / }", "Link nudge: the model's notes 5 ms later / earlier", "nudge_ms", ""),
    _toggle(
        "i",
        "passthrough: your notes through livegen's synth on / off",
        "passthrough",
        "passthrough",
    ),
    _toggle("q", "quantise the model's onsets to the clock grid on / off", "quantize", "quantise"),
    _toggle("b", "clock source: internal / MIDI clock in / Ableton Link", "clock", "clock"),
    _toggle("r", "record on / off", "recording", "record"),
    KeyHelp("Esc", "PANIC: all notes off", (("escape", "panic"),), "panic"),
    _steps("z / x", "computer keyboard octave down / up", "octave", "octave", "keyboard"),
    _steps("c / v", "computer keyboard velocity down / up", "velocity", "velocity", "keyboard"),
    _steps(
        ", / .",
        "computer keyboard note length shorter / longer",
        "length",
        "note length",
        "keyboard",
    ),
    KeyHelp(
        "n",
        "next preset: it loads beside the playing model and takes over at the next turn",
        (("n", "next_preset"),),
    ),
    KeyHelp("F2", "set-up: MIDI ports, audio, preset, mode, sound", (("f2", "setup"),)),
    KeyHelp("F1 or ?", "this help", (("f1", "help"), ("question_mark", "help"))),
    KeyHelp("Ctrl+Q", "quit (the recording is finished and kept)"),  # the app's own binding
)


def _row_keys() -> dict[str, str]:
    """Each panel row's key column (its keys from CONTROL_KEYS, without the slashes)."""
    rows: dict[str, list[str]] = {}
    for key in CONTROL_KEYS:
        if key.row:
            rows.setdefault(key.row, []).append(key.keys.replace(" / ", " "))
    return {row: "  ".join(keys) for row, keys in rows.items()}


ROW_KEYS = _row_keys()  # made once: the table never changes


def panel_keys(row: str) -> str:
    """The key column of a panel row: its keys from CONTROL_KEYS, without the slashes."""
    return ROW_KEYS.get(row, "")


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


def control_rows(controls: Controls, keyboard: KeyboardSettings) -> list[tuple[str, str, str]]:
    c = controls
    register = f"{note_name(c.low_pitch)}–{note_name(c.high_pitch)}"
    values = [
        ("mode", MODE_NAMES[c.mode]),
        ("temperature", f"{c.temperature:.2f}"),
        ("top-p", f"{c.top_p:.2f}"),
        ("density", f"{c.density:+.1f}"),
        ("response", f"{c.response_seconds:g} s"),
        ("register", register),
        ("tempo", f"{c.tempo_bpm:g} bpm"),
        ("passthrough", _on_off(c.passthrough)),
        ("quantise", _on_off(c.quantize)),
        ("clock", c.clock.value),
        ("record", _on_off(c.recording)),
        ("panic", "all notes off"),
        ("octave", f"A = {note_name(12 * (keyboard.octave + 1))}"),
        ("velocity", str(keyboard.velocity)),
        ("note length", f"{keyboard.note_seconds:g} s"),
    ]
    return [(name, value, panel_keys(name)) for name, value in values]


def controls_text(controls: Controls, keyboard: KeyboardSettings, keys: bool = True) -> Text:
    text = Text()
    for i, (name, value, key) in enumerate(control_rows(controls, keyboard)):
        if i:
            text.append("\n")
        text.append(f"{name:<12}", style="dim")
        style = "bold red" if name == "record" and controls.recording else "bold"
        text.append(f"{value:<16}" if keys else value, style=style)
        if keys:
            text.append(key, style="#4fc3f7")
    return text


class ControlsPanel(Widget):
    """The controls' values beside their keys; `narrow` (a narrow terminal): the values only
    (the help screen, F1, still lists the keys). Redrawn when one of the three changes."""

    DEFAULT_CSS = """
    ControlsPanel { width: 42; height: auto; padding: 0 1; }
    ControlsPanel.narrow { width: 32; }
    """

    controls: reactive[Controls] = reactive(Controls)
    keyboard: reactive[KeyboardSettings] = reactive(KeyboardSettings)
    narrow: reactive[bool] = reactive(False, layout=True, toggle_class="narrow")

    def render(self) -> Text:
        return controls_text(self.controls, self.keyboard, keys=not self.narrow)
