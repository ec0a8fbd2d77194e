"""The stage's one-line texts: the status line, the problems banner and the roll's legend.

Each is a widget with reactive attributes (bound to the stage's, see jam_screen.py) and a
render() made from them: Textual redraws one when, and only when, one of its values changes.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from livegen.controls import JamSettings, Mode
from livegen.tui.controls_panel import MODE_NAMES
from livegen.tui.keyboard import note_name
from livegen.tui.pianoroll import MODEL_COLOUR, PLAYER_COLOUR

ENGINE_STATE_STYLES = {"running": "bold green", "failed": "bold red"}  # others: yellow


def describe_port(value: str | None, kind: str) -> str:
    if value in (None, "none"):
        return "computer keyboard" if kind == "in" else "none"
    if value == "virtual":
        return f"livegen {kind} (virtual)"
    return value


def status_text(
    state: str, settings: JamSettings, mode: Mode, preset_swap: str | None = None
) -> Text:
    text = Text()
    text.append("livegen ", style="bold")
    # the engine's state first: a narrow terminal cuts the end of the line, not this
    text.append(f"● {state}", style=ENGINE_STATE_STYLES.get(state, "bold yellow"))
    preset = settings.preset
    for label, value in (
        ("preset", Path(preset).stem if preset.endswith(".toml") else preset),
        ("mode", MODE_NAMES[mode]),
        ("in", describe_port(settings.input, "in")),
        ("out", describe_port(settings.output, "out")),
        ("audio", settings.audio_device or "default"),
    ):
        text.append(f"  {label} ", style="dim")
        text.append(value)
        if label == "preset" and preset_swap:  # the playing one, then the one on its way
            text.append(f" → {preset_swap}", style="bold yellow")
    return text


class StatusLine(Widget):
    """The engine's state and the session's wiring: preset, mode, ports, audio."""

    engine_state: reactive[str] = reactive("starting")
    settings: reactive[JamSettings] = reactive(JamSettings)
    mode: reactive[Mode] = reactive(Mode.CONTINUE)
    preset_swap: reactive[str | None] = reactive(None)

    def render(self) -> Text:
        return status_text(self.engine_state, self.settings, self.mode, self.preset_swap)


class ProblemsBanner(Widget):
    """What is wrong, one line each; hidden (class "shown" off) when nothing is."""

    problems: reactive[tuple[str, ...]] = reactive(tuple, toggle_class="shown", layout=True)

    def render(self) -> Text:
        return Text("\n".join(f"⚠ {problem}" for problem in self.problems))


class Legend(Widget):
    """The roll's colours, and the last key played on the computer keyboard."""

    last_pitch: reactive[int | None] = reactive(None)

    def render(self) -> Text:
        text = Text()
        text.append("■ you", style=PLAYER_COLOUR)
        text.append("   ")
        text.append("■ model", style=MODEL_COLOUR)
        if self.last_pitch is not None:
            text.append("   last key ", style="dim")
            text.append(note_name(self.last_pitch), style="bold")
        return text
