"""Musical time: beats and bars, from livegen's own tempo or from incoming MIDI clock.

Both clocks answer the same questions (`BeatClock`): where in beats a session time falls, when
a beat happens, the nearest grid point (quantisation) and the next bar line (phrase ends).

MidiClockFollower follows 24-ppqn MIDI beat clock with Start / Stop / Continue / Song Position.
Tick arrival times jitter (a USB keyboard, a busy DAW, JACK's period, a busy CPU), and a tick
can arrive late but never early. So the tempo is a robust slope through the last `window`
ticks (four beats by default): the median, over the first half of the window, of the time
from each tick to the one half a window later; a few late ticks (a stalled sender, a busy
CPU) do not move a median. The phase is that line through the least-delayed tick of the last
beat: lateness is one-sided, so the earliest arrival is the truest, and a beat is recent
enough to follow a sender whose clock stalls now and then (JACK's cycles running late).
"""

from __future__ import annotations

import math
from collections import deque

TICKS_PER_BEAT = 24  # MIDI beat clock: 24 pulses per quarter note

CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2


class BeatClock:
    """Beats as a straight line through session time: beat = (t - origin) / seconds_per_beat."""

    beats_per_bar = 4

    def __init__(self, tempo_bpm: float = 120.0, origin: float = 0.0) -> None:
        self.origin = origin
        self.seconds_per_beat = 60.0 / tempo_bpm

    @property
    def tempo_bpm(self) -> float | None:
        return 60.0 / self.seconds_per_beat

    @property
    def valid(self) -> bool:
        return True

    def beat_at(self, t: float) -> float:
        return (t - self.origin) / self.seconds_per_beat

    def time_of_beat(self, beat: float) -> float:
        return self.origin + beat * self.seconds_per_beat

    def quantize(self, t: float, division: int) -> float:
        """The nearest 1/division-beat grid point to session time t."""
        return self.time_of_beat(round(self.beat_at(t) * division) / division)

    def next_grid(self, t: float, division: int) -> float:
        """The first 1/division-beat grid point at or after t."""
        return self.time_of_beat(math.ceil(self.beat_at(t) * division - 1e-9) / division)

    def next_bar(self, t: float) -> float:
        """The first bar line strictly after t."""
        bar = math.floor(self.beat_at(t) / self.beats_per_bar + 1e-9) + 1
        return self.time_of_beat(bar * self.beats_per_bar)


class InternalClock(BeatClock):
    """livegen's own tempo; a tempo change keeps the current beat where it is."""

    def set_tempo(self, tempo_bpm: float, now: float) -> None:
        beat = self.beat_at(now)
        self.seconds_per_beat = 60.0 / tempo_bpm
        self.origin = now - beat * self.seconds_per_beat

    def tick_time(self, tick: int) -> float:
        return self.time_of_beat(tick / TICKS_PER_BEAT)


class MidiClockFollower(BeatClock):
    """Tempo and phase from incoming MIDI clock. `feed(status, data, t)` with each realtime or
    song-position message; `valid` once enough ticks arrived recently."""

    def __init__(self, window: int = 96, min_ticks: int = 12, timeout: float = 0.5) -> None:
        super().__init__()
        self.window = window
        self.min_ticks = min_ticks
        self.timeout = timeout  # no tick for this long: the clock is lost
        self.running = False
        self.position = 0  # index of the next tick (song position, in ticks)
        self._ticks: deque[tuple[int, float]] = deque(maxlen=window)
        self.last_tick = -math.inf
        self.now = 0.0  # latest time seen (feed or touch)
        self.fits = 0

    @property
    def valid(self) -> bool:
        return len(self._ticks) >= self.min_ticks and self.now - self.last_tick < self.timeout

    @property
    def tempo_bpm(self) -> float | None:
        return 60.0 / self.seconds_per_beat if self.valid else None

    @property
    def has_estimate(self) -> bool:
        """A tempo and phase were estimated at some point (maybe stale: see `valid`)."""
        return self.fits > 0

    @property
    def recent_ticks(self) -> list[tuple[int, float]]:
        """The ticks behind the estimate: (position since Start, arrival time), oldest first."""
        return list(self._ticks)

    @property
    def beat(self) -> int:
        return max(0, self.position - 1) // TICKS_PER_BEAT

    def touch(self, t: float) -> None:
        self.now = max(self.now, t)

    def feed(self, status: int, data: bytes | list[int], t: float) -> None:
        self.touch(t)
        if status == CLOCK:
            if self.last_tick < t - self.timeout:
                self._ticks.clear()  # after a gap, old ticks say nothing about the new tempo
            self._ticks.append((self.position, t))
            self.position += 1
            self.last_tick = t
            self._fit()
        elif status == START:
            self.running = True
            self.position = 0
            self._ticks.clear()
        elif status == CONTINUE:
            self.running = True
        elif status == STOP:
            self.running = False
        elif status == SONG_POSITION and len(data) >= 3:
            sixteenths = data[1] | (data[2] << 7)
            self.position = sixteenths * TICKS_PER_BEAT // 4
            self._ticks.clear()

    def _fit(self) -> None:
        n = len(self._ticks)
        if n < self.min_ticks:
            return  # a few ticks after a gap say little: keep the previous estimate
        ticks, lag = list(self._ticks), max(1, n // 2)
        slopes = sorted(
            (ticks[i + lag][1] - ticks[i][1]) / (ticks[i + lag][0] - ticks[i][0])
            for i in range(n - lag)
        )
        seconds_per_tick = slopes[len(slopes) // 2]
        if not 0.15 < seconds_per_tick * TICKS_PER_BEAT < 6.0:
            return  # outside 10..400 bpm (garbage ticks): keep the previous estimate
        self.seconds_per_beat = seconds_per_tick * TICKS_PER_BEAT
        # The line's time at tick 0 is the origin of beat 0.
        self.origin = min(t - k * seconds_per_tick for k, t in ticks[-TICKS_PER_BEAT:])
        self.fits += 1
