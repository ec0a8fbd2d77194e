"""What `livegen-train data` changes in a piece, and says so, rather than train on nonsense.

A MIDI file can hold a gap no performance has: one 48-byte file whose note-off comes
0x0FFFFFFF ticks after its note-on encodes as 155 hours of TIME_SHIFTs, most of a data set's
tokens, and a model trained on it learns to predict silence at loss 0. The rule: any stretch
of time with no event in it (a silence, or notes held while nothing else happens) longer than
`max_gap_seconds` (30 s by default) is shortened to exactly that. The notes and their order
are untouched. Each file so changed is listed with what was done (DATA/repaired.txt), as is
each file with note-ons that no note-off ends (those notes are left out: they have no length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from livegen.kernels.time_steps import seconds_to_step, step_to_seconds
from livegen.kernels.vocab import MAX_SHIFT_STEPS, TIME_SHIFT, VELOCITY

REPAIRED_FILE = "repaired.txt"
DEFAULT_MAX_GAP_SECONDS = 30.0


@dataclass
class Repair:
    """What was done to one piece (all zero: nothing)."""

    gaps_capped: int = 0
    longest_gap_seconds: float = 0.0
    unclosed_notes: int = 0

    def __bool__(self) -> bool:
        return bool(self.gaps_capped or self.unclosed_notes)

    def describe(self, max_gap_seconds: float) -> str:
        parts = []
        if self.gaps_capped:
            parts.append(
                f"{self.gaps_capped} gap(s) longer than {max_gap_seconds:g} s shortened to "
                f"{max_gap_seconds:g} s (the longest was {self.longest_gap_seconds:,.1f} s)"
            )
        if self.unclosed_notes:
            parts.append(f"{self.unclosed_notes} note(s) with no note-off left out")
        return "; ".join(parts)


def _shift_tokens(steps: int) -> np.ndarray:
    full, rest = divmod(steps, MAX_SHIFT_STEPS)
    tokens = [TIME_SHIFT + MAX_SHIFT_STEPS - 1] * full + ([TIME_SHIFT + rest - 1] if rest else [])
    return np.asarray(tokens, dtype=np.int64)


@njit(cache=True)
def _longest_shift_run(tokens: np.ndarray) -> int:
    """Steps of the longest run of consecutive TIME_SHIFTs (one pass: most pieces stop here)."""
    longest = 0
    run = 0
    for token in tokens:
        if TIME_SHIFT <= token < VELOCITY:
            run += token - TIME_SHIFT + 1
            longest = max(longest, run)
        else:
            run = 0
    return longest


def cap_gaps(tokens: np.ndarray, max_gap_seconds: float) -> tuple[np.ndarray, int, float]:
    """(tokens with every run of TIME_SHIFTs longer than the cap shortened to it, how many
    runs were shortened, the longest run's seconds before)."""
    max_steps = max(1, seconds_to_step(max_gap_seconds))
    if tokens.size == 0 or _longest_shift_run(tokens) <= max_steps:
        return tokens, 0, 0.0
    values = tokens.astype(np.int64)
    is_shift = (values >= TIME_SHIFT) & (values < VELOCITY)
    if not is_shift.any():
        return tokens, 0, 0.0
    steps = np.where(is_shift, values - TIME_SHIFT + 1, 0)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], is_shift.astype(np.int8), [0]))))
    starts, ends = edges[0::2], edges[1::2]
    total = np.concatenate(([0], np.cumsum(steps)))
    lengths = total[ends] - total[starts]
    long = np.flatnonzero(lengths > max_steps)
    if long.size == 0:
        return tokens, 0, 0.0
    parts, previous = [], 0
    for run in long:
        parts += [values[previous : starts[run]], _shift_tokens(max_steps)]
        previous = ends[run]
    parts.append(values[previous:])
    capped = np.concatenate(parts).astype(tokens.dtype)
    return capped, int(long.size), step_to_seconds(float(lengths[long].max()))


def repair_report(repairs: list[tuple[str, Repair]], max_gap_seconds: float) -> str:
    """The text of DATA/repaired.txt: one line per file changed."""
    return "".join(f"{name}: {repair.describe(max_gap_seconds)}\n" for name, repair in repairs)
