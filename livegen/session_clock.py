"""The jam's beat: livegen's own clock, a followed MIDI clock, or an Ableton Link session, and
the MIDI clock livegen sends when it leads. Run on the conductor thread."""

from __future__ import annotations

from collections.abc import Callable

from livegen import link_clock
from livegen.clock import CLOCK, START, STOP, BeatClock, InternalClock, MidiClockFollower
from livegen.controls import ClockSource, Controls


class SessionClock:
    def __init__(
        self,
        controls: Controls,
        t0: float,
        send_clock: bool,
        send: Callable[[list[int]], None],
        say: Callable[[str], None],
    ) -> None:
        """`send_clock`: send MIDI clock out while livegen leads; `send(data)`: MIDI out."""
        self.controls, self.t0 = controls, t0
        self.send_clock, self._send, self._say = send_clock, send, say
        self.internal = InternalClock(controls.tempo_bpm)
        self.follower = MidiClockFollower()
        self.link: link_clock.LinkClock | None = None  # the Link session, while following it
        self.tick = 0  # the next MIDI clock tick to send
        if controls.clock == ClockSource.LINK:
            self.link = link_clock.LinkClock(controls.tempo_bpm, t0)
            say("Ableton Link: joining the session on this network")

    def beat_clock(self, now: float) -> BeatClock:
        c = self.controls
        if c.clock == ClockSource.LINK and self.link is not None:
            # Re-read at each use (about a microsecond): a peer's tempo change is in at once.
            self.link.refresh(now, c.nudge_ms / 1000)
            return self.link
        # Following MIDI clock, a stalled sender keeps its last tempo and phase: switching to
        # livegen's own grid for a moment would put notes between the followed beats.
        if c.clock == ClockSource.MIDI and self.follower.has_estimate:
            return self.follower
        return self.internal

    @property
    def sending(self) -> bool:
        return self.send_clock and self.controls.clock == ClockSource.INTERNAL

    def start(self, now: float) -> None:
        # Beat 0 is when the jam starts, not when the model began loading (seconds before on
        # a busy machine): else clock out would open with a burst of every tick owed since.
        self.internal.origin = now
        if self.sending:
            self._send([START])
            self.tick = 0

    def next_tick(self) -> float | None:
        return self.internal.tick_time(self.tick) if self.sending else None

    def send_ticks(self, now: float) -> None:
        while self.sending and self.internal.tick_time(self.tick) <= now:
            self._send([CLOCK])
            self.tick += 1

    def change(self, old: Controls, new: Controls, now: float) -> None:
        """New controls: join or leave Link, a new tempo, clock out started or stopped."""
        self.controls = new
        if new.clock != old.clock:
            self._switch_link(new)
        if new.tempo_bpm != old.tempo_bpm:
            self.internal.set_tempo(new.tempo_bpm, now)
            self.tick = int(self.internal.beat_at(now) * 24) + 1
        if new.clock != old.clock and self.send_clock:
            self._send([START] if new.clock == ClockSource.INTERNAL else [STOP])
            self.tick = int(self.internal.beat_at(now) * 24) + 1

    def _switch_link(self, new: Controls) -> None:
        """Join the Link session when Link becomes the clock; leave it when it stops being."""
        if new.clock == ClockSource.LINK and self.link is None:
            self.link = link_clock.LinkClock(new.tempo_bpm, self.t0)
            self._say("Ableton Link on: joining the session on this network")
        elif new.clock != ClockSource.LINK and self.link is not None:
            self.link.close()
            self.link = None
            self._say("Ableton Link off")

    def propose_tempo(self, bpm: float, now: float) -> None:
        if self.link is not None:
            self.link.propose_tempo(bpm, now)

    def stop(self) -> None:
        """Clock out stops."""
        if self.sending:
            self._send([STOP])

    def close(self) -> None:
        """The Link session is left."""
        if self.link is not None:
            self.link.close()
            self.link = None
