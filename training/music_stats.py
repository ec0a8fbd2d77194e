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
  is not a copy of any 1-second stretch of the prompt (compared at every 50 ms offset);
- melody: 1 - overlap of the top line's step histograms (at each onset its highest pitch;
  the semitones from one to the next, an octave or more in one bin);
- harmony: 1 - overlap of the histograms of interval classes (unison/octave to tritone)
  between the notes sounding together at each onset.

Melody and harmony are reported, not scored: they are what the model decides where the
follow controls place the notes and deal the pitch classes (benchmarks/plan_alone.py), so
they tell a network that picks its notes well from one that picks them at random. Harmony is
undefined (NaN) where either part never sounds two notes at once, melody where either has
fewer than two onsets.

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
STEP_BINS = 13  # top-line steps of 0..11 semitones, and an octave or more
INTERVAL_CLASSES = 7  # 0 (unison, octave) .. 6 (tritone)


@dataclass(frozen=True)
class Comparison:
    """One candidate against the real continuation (signed values: candidate over real)."""

    density: float  # log2(notes/s ratio), signed
    polyphony: float  # log2(mean polyphony ratio), signed
    register: float  # candidate mean pitch - real mean pitch, signed
    key: float  # 1 - pitch-class overlap
    rhythm: float  # 1 - IOI overlap
    novelty: float  # share of new 1-s onset patterns (vs the prompt)
    melody: float = math.nan  # 1 - top-line step overlap (reported, not scored)
    harmony: float = math.nan  # 1 - overlap of intervals sounding together (reported)


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


def top_line_steps(notes: Notes) -> np.ndarray:
    """The top line's steps: at each distinct onset (10 ms grid) its highest pitch, and the
    semitones from one to the next (an octave or more in the last bin), summing to 1 (all
    zero with fewer than two onsets)."""
    starts = seconds_to_steps(notes.start)
    onsets, which = np.unique(starts, return_inverse=True)
    if len(onsets) < 2:
        return np.zeros(STEP_BINS)
    top = np.zeros(len(onsets), dtype=np.int64)
    np.maximum.at(top, which, np.asarray(notes.pitch, dtype=np.int64))
    steps = np.minimum(np.abs(np.diff(top)), STEP_BINS - 1)
    return normalised(np.bincount(steps, minlength=STEP_BINS).astype(np.float64))


def vertical_intervals(notes: Notes) -> np.ndarray:
    """Interval classes between the notes sounding together: at each distinct onset (10 ms
    grid), every pair of the notes sounding then (started at or before it, not ended), as
    unison/octave (0) to tritone (6), summing to 1 (all zero where two never sound at once)."""
    starts = seconds_to_steps(notes.start)
    ends = np.maximum(seconds_to_steps(notes.end), starts + 1)
    pitch = np.asarray(notes.pitch, dtype=np.int64)
    counts = np.zeros(INTERVAL_CLASSES)
    for onset in np.unique(starts):
        sounding = pitch[(starts <= onset) & (ends > onset)]
        if len(sounding) < 2:
            continue
        upper = np.triu_indices(len(sounding), 1)
        semitones = np.abs(sounding[:, None] - sounding[None, :])[upper] % 12
        counts += np.bincount(np.minimum(semitones, 12 - semitones), minlength=INTERVAL_CLASSES)
    return normalised(counts)


def distance(p: np.ndarray, q: np.ndarray) -> float:
    """1 - overlap of two normalised histograms; NaN where either is empty (nothing to
    compare: a monophonic part has no harmony, which is no distance from another)."""
    return 1.0 - overlap(p, q) if p.any() and q.any() else math.nan


def finite_median(values: list[float]) -> float:
    """The median of the values that are numbers (a NaN says "undefined here": a file with
    no harmony); NaN where none is."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.median(finite)) if finite else math.nan


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
        melody=distance(top_line_steps(candidate), top_line_steps(real)),
        harmony=distance(vertical_intervals(candidate), vertical_intervals(real)),
    )
