"""The engine's meters as text: speed, lookahead, latency, xruns, load, clock, recording.

Figures that mean trouble turn red (late events, xruns) or yellow (a thin lookahead), so a
glance across the stage is enough.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.reactive import var
from textual.widgets import Static

from livegen.controls import ClockSource, Controls, Stats

LOOKAHEAD_WARN_MS = 50.0


def _figure(text: Text, label: str, value: str, style: str = "bold", unit: str = "") -> None:
    if label:
        text.append(f"{label} ", style="dim")
    text.append(value, style=style)
    if unit:
        text.append(f" {unit}", style="dim")
    text.append("  ")


def link_line(stats: Stats, controls: Controls) -> str:
    """Link's tempo, its peers, and the beat in the bar as four dots (the bar Link shares)."""
    if stats.tempo_bpm is None or stats.link_peers is None or stats.link_phase is None:
        return "Link: joining"
    peers = {0: "no peers", 1: "1 peer"}.get(stats.link_peers, f"{stats.link_peers} peers")
    beat = min(3, int(stats.link_phase))
    dots = "●" * (beat + 1) + "○" * (3 - beat)
    nudge = f"  nudge {controls.nudge_ms:g} ms" if controls.nudge_ms else ""
    return f"Link {stats.tempo_bpm:.1f} bpm  {peers}  {dots}{nudge}"


def clock_line(stats: Stats, controls: Controls) -> str:
    if controls.clock is ClockSource.LINK:
        return link_line(stats, controls)
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
    """Five short lines (they fit 46 columns, so an 80-column terminal shows them whole)."""
    text = Text()
    state = ("model playing", "bold #ffb74d") if stats.model_speaking else ("listening", "bold")
    if not stats.running:
        state = ("stopped", "bold red")
    _figure(text, "", state[0], state[1])
    _figure(text, "", f"{stats.tokens_per_s:.0f}", unit="tok/s")
    _figure(
        text, "", f"{stats.ms_per_token_p50:.1f}", unit=f"ms p50 {stats.ms_per_token_p99:.1f} p99"
    )
    text.append("\n")
    thin = stats.running and stats.model_speaking and stats.lookahead_ms < LOOKAHEAD_WARN_MS
    _figure(text, "ahead", f"{stats.lookahead_ms:.0f}", "bold yellow" if thin else "bold", "ms")
    _figure(text, "reaction", f"{stats.reaction_ms:.0f}", unit="ms")
    if stats.realtime_factor is None:
        _figure(text, "input", f"{stats.input_to_context_ms:.0f}", unit="ms")
    else:  # an audio model: how much faster than real time it writes its frames
        _figure(text, "RTF", f"{stats.realtime_factor:.1f}x")
    text.append("\n")
    _figure(text, "xruns", str(stats.xruns), "bold red" if stats.xruns else "bold")
    # An audio model's late figure is its late frames; a MIDI model's, its late notes.
    late = stats.late_events if stats.realtime_factor is None else stats.late_frames
    _figure(text, "late", str(late), "bold red" if late else "bold")
    _figure(text, "drop", str(stats.dropped_messages))
    if stats.input_overflows:  # the MIDI system's queue was full: it may have lost input
        _figure(text, "overflow", str(stats.input_overflows), "bold red")
    _figure(text, "CPU", f"{stats.cpu_percent:.0f}%")
    _figure(text, "GPU", "n/a" if stats.gpu_percent is None else f"{stats.gpu_percent:.0f}%")
    text.append("\n")
    text.append(clock_line(stats, controls))
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
    """The meters of `stats` under `controls` (reactive attributes, set every poll while the
    engine's figures move). The text they make is a computed attribute: most new stats read
    the same as the last at the precision shown (idle above all), and an unchanged text is
    not redrawn."""

    DEFAULT_CSS = """
    Meters { height: 5; padding: 0 1; }
    """

    stats: var[Stats] = var(Stats)
    controls: var[Controls] = var(Controls)
    shown: var[Text] = var(Text)

    def compute_shown(self) -> Text:
        return meters_text(self.stats, self.controls)

    def watch_shown(self, text: Text) -> None:
        self.update(text, layout=False)  # always 5 lines
