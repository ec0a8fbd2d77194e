"""One second of onsets as a pattern: what "a repeat of the player's bar" means.

Onsets are placed on a 50 ms grid (slots) and a 1-second window of slots becomes a 20-bit
number, bit i set when slot first + i holds an onset. Two windows with the same number sound
the same rhythmically, whatever the pitches. The measure's novelty (training/music_stats.py)
counts the model's windows that are not one of the prompt's; the rhythm plan
(models/rhythm_plan.py) varies its rhythm where it would repeat one. Both read this one
definition.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

SLOT_STEPS = 5  # 50 ms of 10 ms token steps: onsets closer than this share a place in the bar
WINDOW_SLOTS = 20  # 1 s: long enough to hold a bar's figure at most tempi


def onset_slots(steps: np.ndarray) -> np.ndarray:
    """The distinct 50 ms slots that onsets at `steps` (10 ms token steps) fall in, sorted."""
    return np.unique(np.asarray(steps, dtype=np.int64) // SLOT_STEPS)


def window_pattern(slots: np.ndarray, first: int) -> int:
    """Bit i set when slot first + i holds an onset (i < WINDOW_SLOTS)."""
    inside = slots[(slots >= first) & (slots < first + WINDOW_SLOTS)] - first
    return int(np.bitwise_or.reduce(np.left_shift(1, inside), initial=0))


def window_patterns(slots: np.ndarray, first: int, last: int) -> Counter[int]:
    """The patterns of the windows that begin at every slot from `first` to `last`, each with
    the number of those windows that have it (a bar played over and over counts many)."""
    return Counter(window_pattern(slots, start) for start in range(first, last + 1))
