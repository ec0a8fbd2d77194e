"""Time in the token language: the 10 ms step, one rounding rule, one TIME_SHIFT code.

- A time becomes the step nearest to it; a time exactly on a half step rounds UP (note_seq's
  quantize_to_step, cutoff 0.5). Float seconds cannot always say "exactly": 0.285 s is stored
  as 0.28499999999999998 and would round down. So ``seconds_to_step`` counts a time within
  TIE_TOLERANCE (1e-6 step, 10 ns) below a half step as on it: far above float64's error over
  a day-long session (below 1e-8 steps), far below any timing a player or a clock can mean.
  A file's tick can lie closer than that to a half step without being on it, so a file's
  steps come from ``TempoMap``, in integers, with no tolerance at all.
- A gap of n steps is written as TIME_SHIFTs of at most MAX_SHIFT_STEPS each, the full ones
  first (``write_time_shifts``: plain Python that the numba kernels compile as well, so the
  offline encoder, the live encoder and the decode worker share one definition).

Everything here is plain Python and numpy (no numba at import), so the engine's process can
use it without the kernels' compile.
"""

from __future__ import annotations

import math
from collections.abc import MutableSequence

import numpy as np

from livegen.kernels.midi_codes import DEFAULT_TEMPO
from livegen.kernels.vocab import MAX_SHIFT_STEPS, STEPS_PER_SECOND, TIME_SHIFT, VELOCITY

STEP_SECONDS = 1.0 / STEPS_PER_SECOND  # 0.01
MS_PER_STEP = 1000 // STEPS_PER_SECOND  # 10
TIE_TOLERANCE = 1e-6  # steps: a float time this close below a half step counts as on it
MICROSECONDS = 1_000_000


def seconds_to_step(seconds: float) -> int:
    """The step of a time in seconds: nearest, a half step rounding up (see the module doc).

    The kernels compile this very function (performance.quantize), so live and offline
    encodings round alike.
    """
    return math.floor(seconds * STEPS_PER_SECOND + 0.5 + TIE_TOLERANCE)


def seconds_to_steps(seconds: np.ndarray) -> np.ndarray:
    """seconds_to_step of every element (int64)."""
    scaled = np.asarray(seconds, dtype=np.float64) * STEPS_PER_SECOND
    return np.floor(scaled + (0.5 + TIE_TOLERANCE)).astype(np.int64)


def step_to_seconds(step: float) -> float:
    """Seconds at the start of a step (any real step count: a deadline between steps too)."""
    return step / STEPS_PER_SECOND


def ms_to_steps(milliseconds: float) -> int:
    """A duration in milliseconds as whole steps, by the same rule (15 ms -> 2 steps)."""
    return seconds_to_step(milliseconds / 1000.0)


def write_time_shifts(out: MutableSequence, k: int, steps: int) -> int:
    """Write the TIME_SHIFT tokens of a gap of `steps` into out[k:]; return the next index.

    Full shifts (MAX_SHIFT_STEPS) first, then the remainder; nothing for steps <= 0. `out`
    needs room for steps // MAX_SHIFT_STEPS + 1 tokens. The numba kernels compile this.
    """
    while steps > MAX_SHIFT_STEPS:
        out[k] = TIME_SHIFT + MAX_SHIFT_STEPS - 1
        k += 1
        steps -= MAX_SHIFT_STEPS
    if steps > 0:
        out[k] = TIME_SHIFT + steps - 1
        k += 1
    return k


def time_shift_tokens(steps: int) -> list[int]:
    """The TIME_SHIFT tokens of a gap of `steps` (an empty list for steps <= 0)."""
    steps = int(steps)
    out = [0] * (max(steps, 0) // MAX_SHIFT_STEPS + 1)
    return out[: write_time_shifts(out, 0, steps)]


def shift_steps(token: int) -> int:
    """Steps a TIME_SHIFT token moves time on (0 for any other token)."""
    return token - TIME_SHIFT + 1 if TIME_SHIFT <= token < VELOCITY else 0


class TempoMap:
    """Ticks of a MIDI file to exact time, steps and seconds.

    Exact time is an integer count of units of 1 / (10^6 * ticks_per_quarter) s: tempos are
    whole microseconds per quarter, so the time of every tick is a whole number of units, and
    the step of a time is integer arithmetic with no float in between (a half step rounds up,
    always). Bounds: a tick (a note's end included: symusic's int32 onset plus duration) stays
    below 2^32 and a tempo below 2^24 (three bytes in the file), so units stay below 2^56 and
    100 x units below 2^63: int64 holds every intermediate.
    """

    def __init__(self, ticks_per_quarter: int, change_ticks=(), tempo_us=()) -> None:  # noqa: ANN001
        if ticks_per_quarter <= 0:
            raise ValueError(f"ticks per quarter {ticks_per_quarter}")
        change_ticks = np.asarray(change_ticks, dtype=np.int64)
        tempo_us = np.asarray(tempo_us, dtype=np.int64)
        order = np.argsort(change_ticks, kind="stable")
        change_ticks, tempo_us = change_ticks[order], tempo_us[order]
        # Of several tempo events on one tick the last one counts; until the first one, the
        # MIDI default.
        keep = np.ones(change_ticks.shape[0], dtype=bool)
        keep[:-1] = change_ticks[1:] != change_ticks[:-1]
        change_ticks, tempo_us = change_ticks[keep], tempo_us[keep]
        if change_ticks.shape[0] == 0 or change_ticks[0] != 0:
            change_ticks = np.concatenate(([0], change_ticks))
            tempo_us = np.concatenate(([DEFAULT_TEMPO], tempo_us))
        if np.any(tempo_us <= 0):
            raise ValueError("a tempo of zero microseconds per quarter")
        self.ticks_per_quarter = int(ticks_per_quarter)
        self.change_ticks = change_ticks
        self.tempo_us = tempo_us
        segment_units = np.diff(change_ticks) * tempo_us[:-1]
        self.change_units = np.concatenate(([0], np.cumsum(segment_units))).astype(np.int64)
        self.units_per_second = MICROSECONDS * self.ticks_per_quarter  # even: see steps()

    def units(self, ticks: np.ndarray) -> np.ndarray:
        """Exact times (int64 units) of tick positions (negative ticks count as 0)."""
        ticks = np.maximum(np.asarray(ticks, dtype=np.int64), 0)
        index = np.searchsorted(self.change_ticks, ticks, side="right") - 1
        return self.change_units[index] + (ticks - self.change_ticks[index]) * self.tempo_us[index]

    def steps_of_units(self, units: np.ndarray) -> np.ndarray:
        """Steps (int64) of exact times: floor(100 u / D + 1/2), D = units per second."""
        per_second = self.units_per_second
        return (np.asarray(units, dtype=np.int64) * STEPS_PER_SECOND + per_second // 2) // (
            per_second
        )

    def seconds_of_units(self, units: np.ndarray) -> np.ndarray:
        """Float64 seconds of exact times (for Notes; never used to quantise)."""
        return np.asarray(units, dtype=np.int64) / float(self.units_per_second)

    def seconds(self, ticks: np.ndarray) -> np.ndarray:
        return self.seconds_of_units(self.units(ticks))
