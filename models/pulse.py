"""The pulse of what the player played: the grid its onsets sit on, and where on it a model's
time shift may land.

A pulse is a period and a phase in 10 ms token steps (the period may be fractional: a
sixteenth at 120 bpm is 12.5 steps). Its grid points are the steps floor(phase + n * period
+ 0.5), one step per point, so a fractional period never offers two neighbouring steps for
one point.

`estimate_pulse` finds the COARSEST grid that holds nearly all of the onsets (FIT_SHARE,
each within a tolerance): every grid that holds the onsets also has its subdivisions holding
them, and the finest of those would allow any rhythm at all. Candidates come from a comb over
log-spaced periods (the onsets' phase coherence, which is cheap for thousands of periods at
once); each candidate's phase and period are then refitted by least squares on the onsets it
holds, so a tempo a little off the comb's spacing does not drift over the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_ONSETS = 6  # fewer distinct onsets say too little about a pulse
MIN_PERIOD = 6.0  # steps (60 ms): finer than a 32nd at 125 bpm is no grid worth keeping
MAX_PERIOD = 100.0  # steps (1 s): one time shift always reaches the next grid point
FIT_SHARE = 0.85  # the share of onsets a grid must hold
COMB_PERIODS = 1600  # log-spaced, 0.18% apart: the refit mends the rest
COHERENCE_FLOOR = 0.3  # candidates below this phase coherence are not checked


@dataclass(frozen=True)
class Pulse:
    period: float  # steps between grid points
    phase: float  # a grid point, in steps
    fit: float  # the share of the onsets it was estimated from that lie on it

    def subdivided(self, parts: int) -> Pulse:
        """The same pulse with `parts` grid points to each of its periods."""
        return self if parts == 1 else Pulse(self.period / parts, self.phase, self.fit)

    def on_grid(self, steps: np.ndarray) -> np.ndarray:
        """Bool per step: the step is a grid point."""
        steps = np.asarray(steps, dtype=np.float64)
        n = np.round((steps - self.phase) / self.period)
        return np.floor(self.phase + n * self.period + 0.5) == steps

    def landings(self, step: int, longest: int) -> np.ndarray:
        """Bool [longest]: entry k - 1 says a time shift of k steps from `step` lands on a
        grid point."""
        return self.on_grid(step + np.arange(1, longest + 1))


def tolerance(period: float) -> float:
    """How far (steps) an onset may lie from a grid point and still count as on it: 10 ms for
    a fine grid (the token grid's rounding), up to 30 ms for a beat-long one (a player's)."""
    return float(np.clip(0.08 * period, 1.0, 3.0))


def _fit(onsets: np.ndarray, period: float, phase: float) -> tuple[float, np.ndarray]:
    """(share of onsets within tolerance of the grid, their grid indices)."""
    n = np.round((onsets - phase) / period)
    off = np.abs(onsets - (phase + n * period))
    inside = off <= tolerance(period)
    return float(inside.mean()), np.where(inside, n, np.nan)


def _refit(onsets: np.ndarray, period: float, phase: float) -> Pulse:
    """Least-squares period and phase over the onsets the grid holds, then its fit again."""
    share, index = _fit(onsets, period, phase)
    held = ~np.isnan(index)
    if held.sum() >= 2 and np.ptp(index[held]) > 0:
        slope, intercept = np.polyfit(index[held], onsets[held], 1)
        if MIN_PERIOD <= slope <= MAX_PERIOD:
            refit_share, _ = _fit(onsets, float(slope), float(intercept))
            if refit_share >= share:
                period, phase, share = float(slope), float(intercept), refit_share
    return Pulse(period, phase % period, share)


def estimate_pulse(onsets: np.ndarray) -> Pulse | None:
    """The coarsest grid holding FIT_SHARE of the distinct onsets (token steps), or None (too
    few onsets, or no grid between MIN_PERIOD and MAX_PERIOD holds them: free time)."""
    onsets = np.unique(np.asarray(onsets, dtype=np.int64)).astype(np.float64)
    if onsets.size < MIN_ONSETS:
        return None
    periods = np.geomspace(MAX_PERIOD, MIN_PERIOD, COMB_PERIODS)
    # Float32 cosines and sines of onset times taken from the first onset (small angles, so
    # float32 keeps them to 1e-4 rad): twenty times faster than complex float64 exponentials.
    angles = np.outer(2 * np.pi / periods, onsets - onsets[0]).astype(np.float32)
    cos, sin = np.cos(angles).mean(axis=1), np.sin(angles).mean(axis=1)
    coherence = np.hypot(cos, sin)
    # Local maxima of the coherence, coarsest first.
    peak = np.r_[
        False, (coherence[1:-1] >= coherence[:-2]) & (coherence[1:-1] >= coherence[2:]), False
    ]
    for i in np.flatnonzero(peak & (coherence >= COHERENCE_FLOOR)):
        period = float(periods[i])
        phase = (onsets[0] + float(np.arctan2(sin[i], cos[i])) / (2 * np.pi) * period) % period
        pulse = _refit(onsets, period, phase)
        if pulse.fit >= FIT_SHARE:
            return pulse
    return None
