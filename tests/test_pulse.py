"""The pulse of a prompt (models/pulse.py): grids found in onsets made here, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from livegen.models.pulse import Pulse, estimate_pulse


def test_grid_points_are_one_step_each() -> None:
    """A sixteenth at 120 bpm is 12.5 steps: points at 0, 12.5, 25, 37.5, 50 are the steps 0,
    13, 25, 38, 50 (each rounded up from a half), never 12 or 37."""
    pulse = Pulse(period=12.5, phase=0.0, fit=1.0)
    steps = np.arange(52)
    assert np.flatnonzero(pulse.on_grid(steps)).tolist() == [0, 13, 25, 38, 50]
    # From step 13, shifts of 12 and 25 land on 25 and 38; 37 lands on 50.
    assert (np.flatnonzero(pulse.landings(13, 40)) + 1).tolist() == [12, 25, 37]


def test_sixteenths_at_120_bpm() -> None:
    """Eighths with some sixteenths between (120 bpm, 10 ms steps, rounded the token way):
    the grid is the sixteenth, 12.5 steps, phase 0."""
    points = [0, 2, 4, 5, 6, 8, 10, 11, 12, 14, 16, 18, 19, 20, 22, 24]
    onsets = np.floor(np.array(points) * 12.5 + 0.5)
    pulse = estimate_pulse(onsets)
    assert pulse is not None and pulse.fit == 1.0
    assert pulse.period == pytest.approx(12.5, abs=0.02)
    assert min(pulse.phase, pulse.period - pulse.phase) < 0.5


def test_the_coarsest_grid_that_holds_the_onsets() -> None:
    """Onsets every 25 steps from step 7 (with one rest): the grid is 25 steps at phase 7, not
    its subdivision 12.5 (which also holds them, and would allow any rhythm at all)."""
    onsets = 7 + 25 * np.array([0, 1, 2, 3, 5, 6, 7, 8, 9])
    pulse = estimate_pulse(onsets)
    assert pulse is not None
    assert pulse.period == pytest.approx(25.0, abs=1e-6)
    assert pulse.phase == pytest.approx(7.0, abs=1e-6)


def test_no_pulse_in_free_time_or_few_onsets() -> None:
    assert estimate_pulse(np.array([0, 50, 100, 150, 200])) is None  # five onsets: too few
    free = np.cumsum(np.random.default_rng(3).uniform(7, 61, 40)).round()
    assert estimate_pulse(free) is None
