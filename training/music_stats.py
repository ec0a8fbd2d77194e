"""Statistics that say whether a continuation fits the music it continues.

Each compares a candidate (the model's continuation, or a reference such as the loop floor)
with what the real music did next, over the same span, the way MusPy / MGEval-style
statistics do (no learned model, so it runs offline):

- density: log2 of the ratio of notes per second (0: as busy as the real music);
- polyphony: log2 of the ratio of mean sounding notes, counted only where something sounds;
- register: difference of mean pitch, in semitones;
- key: 1 - overlap of the pitch-class histograms (each normalised to sum 1);
- rhythm: 1 - overlap of the inter-onset-interval histograms (log-spaced bins, 10 ms to 8 s);
- novelty: the share of the candidate's 1-second windows whose onset pattern on a 50 ms grid
  is not a copy of any 1-second stretch of the prompt (compared at every 50 ms offset).

Onsets are quantised to the token grid (10 ms) before rhythm and novelty, so a real file's
unquantised chord (three onsets a millisecond apart) and the model's chord (one step) agree.
An empty candidate counts as one note for density, one voice for polyphony, and shares no
histogram mass (key and rhythm distance 1); its register and novelty are undefined (NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from livegen.kernels.onset_patterns import (
    SLOT_STEPS,
    WINDOW_SLOTS,
    onset_slots,
    window_pattern,
    window_patterns,
)
from livegen.kernels.time_steps import STEP_SECONDS, seconds_to_step, seconds_to_steps
from livegen.kernels.tokenizer import Notes

IOI_EDGES = np.geomspace(0.01, 8.0, 25)  # 24 bins, ~1.32x apart


@dataclass(frozen=True)
class Comparison:
    """One candidate against the real continuation (signed values: candidate over real)."""

    density: float  # log2(notes/s ratio), signed
    polyphony: float  # log2(mean polyphony ratio), signed
    register: float  # candidate mean pitch - real mean pitch, signed
    key: float  # 1 - pitch-class overlap
    rhythm: float  # 1 - IOI overlap
    novelty: float  # share of new 1-s onset patterns (vs the prompt)


def onset_steps(notes: Notes) -> np.ndarray:
    """Distinct onsets on the 10 ms token grid, sorted."""
    return np.unique(seconds_to_steps(notes.start))


def notes_per_second(notes: Notes, seconds: float) -> float:
    """Notes per second over `seconds`; an empty part counts as one note (log stays finite)."""
    return max(len(notes), 1) / seconds


def mean_polyphony(notes: Notes) -> float:
    """Mean number of sounding notes over the time where at least one sounds (>= 1; an empty
    part counts as one voice)."""
    if len(notes) == 0:
        return 1.0
    ends = np.maximum(notes.end, notes.start + STEP_SECONDS)
    times = np.concatenate([notes.start, ends])
    change = np.concatenate([np.ones(len(notes)), -np.ones(len(notes))])
    order = np.lexsort((change, times))  # at equal times an end before a start
    times, counts = times[order], np.cumsum(change[order])
    spans = np.diff(times)
    sounding = counts[:-1]
    covered = spans[sounding > 0].sum()
    if covered <= 0:
        return 1.0
    return float((spans * sounding).sum() / covered)


def mean_pitch(notes: Notes) -> float:
    return float(notes.pitch.mean()) if len(notes) else math.nan


def normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts.astype(np.float64)


def pitch_class_histogram(notes: Notes) -> np.ndarray:
    """12 bins, one per pitch class, counted by notes, summing to 1 (all zero if empty)."""
    return normalised(np.bincount(notes.pitch % 12, minlength=12).astype(np.float64))


def ioi_histogram(notes: Notes) -> np.ndarray:
    """Inter-onset intervals between distinct onsets, in log-spaced bins from 10 ms to 8 s
    (longer gaps land in the last bin), summing to 1 (all zero with fewer than two onsets)."""
    intervals = np.diff(onset_steps(notes)) * STEP_SECONDS
    intervals = np.clip(intervals, IOI_EDGES[0], IOI_EDGES[-1])
    counts, _ = np.histogram(intervals, bins=IOI_EDGES)
    return normalised(counts.astype(np.float64))


def overlap(p: np.ndarray, q: np.ndarray) -> float:
    """Shared mass of two normalised histograms: 1 identical, 0 disjoint (or one empty)."""
    return float(np.minimum(p, q).sum())


def novelty(candidate: Notes, prompt: Notes, prompt_seconds: float, seconds: float) -> float:
    """Share of the candidate's non-silent 1-s windows whose onset pattern is not one the
    prompt has at any 50 ms offset (NaN when every window is silent)."""
    return new_share(candidate, known_patterns(prompt, prompt_seconds), seconds)


def known_patterns(prompt: Notes, prompt_seconds: float) -> set[int]:
    """The prompt's 1-s onset patterns, at every 50 ms offset inside it."""
    last = seconds_to_step(prompt_seconds) // SLOT_STEPS - WINDOW_SLOTS
    return set(window_patterns(onset_slots(onset_steps(prompt)), 0, max(last, 0)))


def new_share(candidate: Notes, known: set[int], seconds: float) -> float:
    """novelty() against patterns already found (a caller judging many candidates against
    one prompt finds them once)."""
    slots = onset_slots(onset_steps(candidate))
    patterns = [window_pattern(slots, w * WINDOW_SLOTS) for w in range(int(seconds + 1e-9))]
    heard = [p for p in patterns if p]
    if not heard:
        return math.nan
    return sum(p not in known for p in heard) / len(heard)


def compare(
    candidate: Notes,
    real: Notes,
    prompt: Notes,
    prompt_seconds: float,
    seconds: float,
    known: set[int] | None = None,
) -> Comparison:
    """The candidate's statistics against the real continuation's (both `seconds` long);
    `known`: the prompt's patterns (known_patterns), when already found."""
    if known is None:
        known = known_patterns(prompt, prompt_seconds)
    return Comparison(
        density=math.log2(notes_per_second(candidate, seconds) / notes_per_second(real, seconds)),
        polyphony=math.log2(mean_polyphony(candidate) / mean_polyphony(real)),
        register=mean_pitch(candidate) - mean_pitch(real),
        key=1.0 - overlap(pitch_class_histogram(candidate), pitch_class_histogram(real)),
        rhythm=1.0 - overlap(ioi_histogram(candidate), ioi_histogram(real)),
        novelty=new_share(candidate, known, seconds),
    )
