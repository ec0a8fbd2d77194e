"""The one time-step rule (kernels/time_steps.py): rounding, the TIME_SHIFT code, tempo maps."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from livegen.kernels import performance
from livegen.kernels.time_steps import (
    TempoMap,
    ms_to_steps,
    seconds_to_step,
    seconds_to_steps,
    shift_steps,
    step_to_seconds,
    time_shift_tokens,
)
from livegen.kernels.vocab import TIME_SHIFT, token_name


def test_half_steps_round_up_even_where_float_seconds_fall_short() -> None:
    # Python's round() is half-even (round(28.5) == 28); float64 makes 0.285 * 100 fall short.
    assert [seconds_to_step(t) for t in (0.285, 0.295, 0.005, 1.035)] == [29, 30, 1, 104]
    assert [seconds_to_step(t) for t in (0.0, 0.004999, 0.0149, 0.0151)] == [0, 0, 1, 2]
    assert seconds_to_step(-0.007) == -1  # nearest, also below zero
    assert ms_to_steps(15) == 2 and ms_to_steps(200) == 20 and ms_to_steps(4.9) == 0
    assert step_to_seconds(29) == 0.29


@given(st.floats(-1e4, 1e5, allow_nan=False))
def test_kernels_python_and_arrays_share_the_rule(seconds: float) -> None:
    step = seconds_to_step(seconds)
    assert performance.quantize(seconds) == step
    assert seconds_to_steps(np.array([seconds])).tolist() == [step]
    assert abs(step - seconds * 100) <= 0.5 + 1e-6


def test_time_shift_code() -> None:
    spelled = {n: [token_name(t) for t in time_shift_tokens(n)] for n in (0, -3, 1, 100, 250)}
    assert spelled == {
        0: [],
        -3: [],
        1: ["TIME_SHIFT_1"],
        100: ["TIME_SHIFT_100"],
        250: ["TIME_SHIFT_100", "TIME_SHIFT_100", "TIME_SHIFT_50"],
    }
    for n in range(0, 420, 7):
        tokens = time_shift_tokens(n)
        assert sum(shift_steps(t) for t in tokens) == n
        assert len(tokens) == -(-n // 100)  # as few shifts as can carry it
    assert shift_steps(TIME_SHIFT - 1) == 0  # a NOTE_OFF moves no time


def test_tempo_map_defaults_and_duplicates() -> None:
    # No tempo event: 120 bpm. Two events on one tick: the last one counts.
    plain = TempoMap(480)
    assert plain.steps_of_units(plain.units(np.array([0, 480, 481]))).tolist() == [0, 50, 50]
    twice = TempoMap(480, [0, 0], [1_000_000, 250_000])
    assert twice.seconds(np.array([480])).tolist() == [0.25]
