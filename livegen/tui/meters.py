"""The engine's meters as text: speed, lookahead, latency, xruns, load, clock, recording.

Figures that mean trouble turn red (late events, xruns) or yellow (a thin lookahead), so a
glance across the stage is enough.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import Static

from livegen.controls import ClockSource, Controls, Stats

LOOKAHEAD_WARN_MS = 50.0


def _figure(text: Text, label: str, value: str, style: str = "bold") -> None:
    text.append(f"{label} ", style="dim")
    text.append(value, style=style)
    text.append("   ")


def clock_line(stats: Stats, controls: Controls) -> str:
    if controls.clock is ClockSource.MIDI:
        if stats.tempo_bpm is None:
            return "MIDI clock: waiting for clock"
        beat = "" if stats.beat is None else f"  beat {stats.beat}"
        return f"MIDI clock {stats.tempo_bpm:.1f} bpm{beat}"
    return f"internal clock {controls.tempo_bpm:g} bpm"


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def meters_text(stats: Stats, controls: Controls) -> Text:
    text = Text()
    state = ("model playing", "bold #ffb74d") if stats.model_speaking else ("listening", "bold")
    if not stats.running:
        state = ("stopped", "bold red")
    _figure(text, "engine", state[0], state[1])
    _figure(text, "tokens/s", f"{stats.tokens_per_s:.0f}")
    _figure(text, "ms/token", f"{stats.ms_per_token_p50:.1f} p50 {stats.ms_per_token_p99:.1f} p99")
    text.append("\n")
    thin = stats.running and stats.model_speaking and stats.lookahead_ms < LOOKAHEAD_WARN_MS
    _figure(text, "lookahead", f"{stats.lookahead_ms:.0f} ms", "bold yellow" if thin else "bold")
    _figure(text, "reaction", f"{stats.reaction_ms:.0f} ms")
    _figure(text, "input→model", f"{stats.input_to_context_ms:.0f} ms")
    text.append("\n")
    _figure(text, "xruns", str(stats.xruns), "bold red" if stats.xruns else "bold")
    _figure(text, "late", str(stats.late_events), "bold red" if stats.late_events else "bold")
    _figure(text, "dropped", str(stats.dropped_messages))
    _figure(text, "CPU", f"{stats.cpu_percent:.0f}%")
    gpu = "n/a" if stats.gpu_percent is None else f"{stats.gpu_percent:.0f}%"
    _figure(text, "GPU", gpu)
    text.append("\n")
    _figure(text, "clock", clock_line(stats, controls))
    text.append("\n")
    if stats.recording_path and controls.recording:
        text.append("● REC ", style="bold red")
        name = Path(stats.recording_path).name
        text.append(f"{name}  {format_duration(stats.recording_seconds)}")
    elif not controls.recording:
        text.append("recording off (r turns it on)", style="dim")
    else:
        text.append("not recording", style="dim")
    return text


class Meters(Static):
    DEFAULT_CSS = """
    Meters { height: auto; padding: 0 1; }
    """

    def show(self, stats: Stats, controls: Controls) -> None:
        self.update(meters_text(stats, controls), layout=False)  # always 5 lines
