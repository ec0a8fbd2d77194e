"""Ableton Link as a beat clock: tempo, beat and bar phase shared with every Link peer on the
network (Ableton Live, Bitwig, Traktor, phone apps, another livegen).

The binding is LinkPython-extern (`pip install 'livegen[link]'`), an optional extra because
Ableton Link is GPL-licensed (README: "Ableton Link"). It was picked over aalink because it
works from a plain thread: the engine's conductor captures Link's session state and asks
`beatAtTime` directly, where aalink wants a running asyncio loop in the thread that makes it.

LinkClock answers BeatClock's questions (beat at a session time, grid, bar lines) from a
straight line that `refresh(now)` re-draws from Link's session state: a tempo change by any
peer is in the next refresh. Link keeps its own clock (on Linux CLOCK_MONOTONIC_RAW, which
drifts from perf_counter's CLOCK_MONOTONIC by NTP's corrections), so the offset between the
two is measured now and then and Link times are converted through it.

`nudge` (seconds) is the output latency of what livegen plays: a note sent at t is heard at
t + nudge, so livegen's grid is Link's grid moved nudge earlier. Bars are Link's quantum
(4 beats): the phase within a bar is what all peers agree on; the beat count is each peer's own.
"""

from __future__ import annotations

import time
from types import ModuleType

from livegen.clock import BeatClock
from livegen.kernels.errors import LivegenError

INSTALL_HINT = (
    "Ableton Link needs the optional extra: pip install 'livegen[link]' "
    "(LinkPython-extern; Link is GPL-licensed, see the README)"
)
QUANTUM = 4.0  # beats per bar, as Link's peers share it
# A peer that enables Link the moment it is made can impose its own tempo on a session it
# joins (about one join in ten, the bindings' trackers say); waiting this long avoids it.
ENABLE_DELAY = 0.5
OFFSET_REFRESH = 1.0  # seconds between measurements of Link's clock against perf_counter


class LinkUnavailable(LivegenError):
    """Ableton Link was asked for, but its binding is not installed."""


def load_link() -> ModuleType:
    """The binding's module, or LinkUnavailable saying how to install it."""
    try:
        import link
    except ImportError:
        raise LinkUnavailable(INSTALL_HINT) from None
    if not hasattr(link, "Link"):  # some other package called `link`
        raise LinkUnavailable(INSTALL_HINT)
    return link


def link_available() -> bool:
    try:
        load_link()
    except LinkUnavailable:
        return False
    return True


class LinkClock(BeatClock):
    """Follows (or, alone, leads) a Link session. Session time is perf_counter() - t0."""

    beats_per_bar = int(QUANTUM)

    def __init__(self, tempo_bpm: float, t0: float, enable_delay: float = ENABLE_DELAY) -> None:
        super().__init__(tempo_bpm)
        # The Link object is made when it is enabled, not before: a Link object founds its own
        # session the moment it exists, and a session that has run longer than the band's can
        # win when they meet (measured: a clock made 0.5 s before enabling took over a
        # running peer's session in most joins).
        self._binding = load_link()
        self._link = None
        self._clock = None
        self.t0 = t0
        self._enable_at = time.perf_counter() + enable_delay
        self._offset = 0.0  # Link's clock minus perf_counter, seconds
        self._offset_at = -float("inf")
        self.tempo = tempo_bpm  # the session's tempo as Link shows it (for display)
        self.peers = 0
        self.phase = 0.0  # beats into the bar, [0, 4)
        self.closed = False

    @property
    def tempo_bpm(self) -> float | None:
        return self.tempo

    @property
    def enabled(self) -> bool:
        return self._link is not None and bool(self._link.enabled)

    def refresh(self, now: float, nudge: float = 0.0) -> None:
        """Re-draw the beat line from Link's session state at session time `now`."""
        if self.closed:
            return
        wall = now + self.t0
        if self._link is None:
            if wall < self._enable_at:
                return  # the internal beat line until then
            self._link = self._binding.Link(self.tempo)
            self._clock = self._link.clock()
            self._link.enabled = True
        if wall - self._offset_at > OFFSET_REFRESH:
            self._measure_offset()
        state = self._link.captureAppSessionState()
        heard = self._micros(now + nudge)
        beat = state.beatAtTime(heard, QUANTUM)
        # The line's slope is the timeline's own over the next second: tempo() is a value for
        # display, smoothed, which Link's drift compensation may not follow exactly.
        ahead = state.beatAtTime(heard + 1_000_000, QUANTUM)
        if ahead > beat:
            self.seconds_per_beat = 1.0 / (ahead - beat)
        self.origin = now - beat * self.seconds_per_beat
        self.phase = state.phaseAtTime(heard, QUANTUM)
        self.tempo = state.tempo()
        self.peers = self._link.numPeers()

    def propose_tempo(self, tempo_bpm: float, now: float) -> None:
        """livegen's player changed the tempo: the whole session moves to it (as in any
        Link app, every peer may change the shared tempo)."""
        if self.closed:
            return
        if self._link is None:  # not in the session yet: it joins at this tempo
            self.tempo, self.seconds_per_beat = tempo_bpm, 60.0 / tempo_bpm
            return
        state = self._link.captureAppSessionState()
        state.setTempo(tempo_bpm, self._micros(now))
        self._link.commitAppSessionState(state)
        self.refresh(now)

    def close(self) -> None:
        """Leave the session (a peer that is not following should not stay in it)."""
        if not self.closed:
            if self._link is not None:
                self._link.enabled = False
            self.closed = True

    def _micros(self, t: float) -> int:
        return round((t + self.t0 + self._offset) * 1e6)

    def _measure_offset(self) -> None:
        # Bracket each reading of Link's clock by two perf_counter readings; the tightest
        # bracket of a few is the truest (a preemption between readings widens it).
        best = None
        for _ in range(5):
            before = time.perf_counter()
            micros = self._clock.micros()
            after = time.perf_counter()
            if best is None or after - before < best[0]:
                best = (after - before, micros / 1e6 - (before + after) / 2)
        self._offset = best[1]
        self._offset_at = time.perf_counter()
