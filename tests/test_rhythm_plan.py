"""The rhythm plan (models/rhythm_plan.py): the model's onsets, chords and note lengths drawn
from the player's, checked mask by mask on hand-made prompts, then on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from livegen.kernels.tokenizer import Notes, decode_tokens, encode_notes
from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, NUM_EVENTS, TIME_SHIFT, VELOCITY
from livegen.models.follow import Follower, FollowSettings
from livegen.models.pulse import Pulse
from livegen.models.rhythm_plan import RhythmPlan, has_rhythm
from livegen.models.sampling import SamplingParams


def shifts(mask: torch.Tensor) -> list[int]:
    """The time shifts (in steps) a mask allows."""
    return [k + 1 for k in torch.nonzero(mask[TIME_SHIFT:VELOCITY]).flatten().tolist()]


def steady_plan(**options: object) -> RhythmPlan:
    """Two-note chords every 10 steps (0..40), each 5 steps long: every draw is 10 steps, two
    notes, 5 steps; the last onset is at 40, so the first model onset is due at 50."""
    starts = np.repeat(np.arange(5) * 10, 2)
    return RhythmPlan(starts, np.full(10, 5), 40, None, seed=0, **options)


def test_the_plan_walks_one_onset_through_by_hand() -> None:
    plan = steady_plan()
    assert plan.due == 50
    before = plan.mask(45)  # no onset yet, and time stops at the due instant
    assert not before[NOTE_ON:NOTE_OFF].any() and not before[VELOCITY:NUM_EVENTS].any()
    assert shifts(before) == [1, 2, 3, 4, 5]
    due = plan.mask(50)  # now it must: time waits for a note
    assert due[NOTE_ON:NOTE_OFF].all() and shifts(due) == []
    plan.observe(NOTE_ON + 60, 50)
    open_chord = plan.mask(50)  # one of two notes: the chord is not full
    assert open_chord[NOTE_ON + 64] and shifts(open_chord) == []
    assert not open_chord[NOTE_OFF + 60]  # its note lasts 5 steps
    plan.observe(NOTE_ON + 64, 50)
    full = plan.mask(50)  # two notes: on to the next instant, the notes' end at 55
    assert not full[NOTE_ON:NOTE_OFF].any() and shifts(full) == [1, 2, 3, 4, 5]
    ending = plan.mask(55)  # both notes end now, before time moves
    assert ending[NOTE_OFF + 60] and ending[NOTE_OFF + 64] and shifts(ending) == []
    plan.observe(NOTE_OFF + 60, 55)
    plan.observe(NOTE_OFF + 64, 55)
    assert plan.due == 60 and shifts(plan.mask(55)) == [1, 2, 3, 4, 5]


def test_variation_joins_and_halves_but_keeps_the_mean_interval() -> None:
    """All variation, intervals of 10: a third of the draws are 20 (joined), two thirds 5
    (halved), so the mean stays 10 and the onset rate the player's."""
    plan = steady_plan(variation=1.0)
    draws = np.array([plan.draw_interval() for _ in range(6000)])
    assert set(draws.tolist()) == {5, 20}
    assert draws.mean() == pytest.approx(10.0, abs=0.3)
    assert set(np.array([steady_plan().draw_interval() for _ in range(50)]).tolist()) == {10}


def test_an_interval_near_the_pulse_lands_on_it_and_one_off_it_stays_off() -> None:
    """Pulse of 12.5 steps from 0 (grid 0, 13, 25, 38, 50, ...; tolerance 1 step): an
    interval of 12 after 25 lands on 38; an interval of 6 after 25 stays at 31."""
    pulse = Pulse(12.5, 0.0, 1.0)
    near = RhythmPlan(np.array([0, 12, 24, 36, 48]), np.full(5, 3), 25, pulse, seed=0)
    assert near.due == 38
    off = RhythmPlan(np.array([0, 6, 12, 18, 24]), np.full(5, 3), 25, pulse, seed=0)
    assert off.due == 31


def test_too_few_onsets_give_no_plan() -> None:
    assert not has_rhythm(np.array([0, 10, 20, 30]))  # three intervals
    nothing = Follower([], 0, SamplingParams(), FollowSettings(rhythm_draw=True))
    assert nothing.plan is None  # nothing played, nothing to draw from
    assert has_rhythm(np.array([0, 10, 20, 30, 40]))
    starts = np.arange(4) * 0.1  # four onsets: three intervals
    four = [int(t) for t in encode_notes(Notes(starts, starts + 0.05, [60] * 4, [80] * 4, [0] * 4))]
    few = Follower(four, 40, SamplingParams(), FollowSettings(rhythm_draw=True))
    assert few.plan is None  # the Follower asks before it draws


def chords_prompt() -> tuple[list[int], int]:
    """Onsets at 0, 0.2, 0.3, 0.6, 0.7, 1.0 ... (intervals 0.1, 0.2 and 0.3 s), chords of
    one or two notes, lengths 0.05 or 0.15 s, for 4 s."""
    starts, pitches, lengths = [], [], []
    t, k = 0.0, 0
    while t < 3.9:
        size = 1 + k % 2
        starts += [t] * size
        pitches += [60, 64][:size]
        lengths += [0.05 if k % 3 else 0.15] * size
        t = round(t + (0.1, 0.2, 0.3)[k % 3], 2)
        k += 1
    starts = np.array(starts)
    notes = Notes(
        starts, starts + np.array(lengths), pitches, [80] * len(starts), [0] * len(starts)
    )
    tokens = [int(t) for t in encode_notes(notes)]
    return tokens, int(round(starts.max() * 100)) + 15


def test_the_follower_applies_the_plan_unless_the_turn_wants_a_note_at_once() -> None:
    tokens, step = chords_prompt()
    follower = Follower(tokens, step, SamplingParams(), FollowSettings(rhythm_draw=True))
    assert follower.plan is not None
    due = follower.plan.due
    waiting = follower.restrict(None, due - 1)
    assert not waiting[NOTE_ON:NOTE_OFF].any() and shifts(waiting) == [1]
    opening = torch.ones_like(waiting)
    opening[TIME_SHIFT:VELOCITY] = False  # a call-mode turn opens with a note at once
    assert follower.restrict(opening, due - 1)[NOTE_ON:NOTE_OFF].all()


def test_a_models_rhythm_is_drawn_from_the_prompts(tmp_path) -> None:
    """A random tiny model continues the chords prompt for 3 s, four seeds: every interval
    between its onsets is one of the prompt's (0.1, 0.2, 0.3 s), every chord has one or two
    notes, and every note lasts 0.05 or 0.15 s, the notes cut at the continuation's end
    aside. Without the plan the same model plays other intervals."""
    from livegen.models.continuation import continue_tokens
    from livegen.models.loading import load_model_for
    from livegen.models.streaming import StreamingDecoder
    from tests.presets import tiny_preset

    decoder = StreamingDecoder(load_model_for(tiny_preset(tmp_path).with_suffix("")).model)
    prompt, _ = chords_prompt()
    params = SamplingParams(temperature=1.5, top_p=1.0, max_polyphony=16)
    for draw in (True, False):
        intervals, chords, lengths = set(), set(), set()
        for seed in range(4):
            follow = FollowSettings(rhythm_draw=draw)
            result = continue_tokens(decoder, prompt, params, 3.0, seed=seed, follow=follow)
            end = result.prompt_seconds + result.seconds
            played = decode_tokens([*prompt, *result.generated])
            mine = played.take(np.flatnonzero(played.start >= result.prompt_seconds - 1e-9))
            steps, sizes = np.unique(np.round(mine.start * 100).astype(int), return_counts=True)
            intervals |= set(np.diff(steps).tolist())
            chords |= set(sizes[:-1].tolist())  # the last chord may be cut by the end
            whole = mine.end < end - 1e-9
            lengths |= set(np.round((mine.end - mine.start)[whole] * 100).astype(int).tolist())
        if draw:
            assert len(intervals) >= 2 and intervals <= {10, 20, 30}, intervals
            assert chords <= {1, 2} and lengths <= {5, 15}, (chords, lengths)
        else:
            assert not intervals <= {10, 20, 30}, intervals


def test_preset_keys_turn_it_on_and_bad_values_are_one_clear_error(tmp_path) -> None:
    from livegen.models.preset import PresetError, SamplingDefaults, load_preset
    from tests.presets import tiny_preset

    settings = FollowSettings.from_defaults(
        SamplingDefaults(follow_rhythm_draw=True, follow_rhythm_variation=0.25)
    )
    assert settings.rhythm_draw and settings.rhythm_variation == 0.25 and settings.active
    path = tiny_preset(tmp_path)
    text = "\n".join(
        line for line in path.read_text().splitlines() if not line.startswith("follow_rhythm_")
    )
    for line in ("follow_rhythm_draw = 2", "follow_rhythm_variation = 1.5"):
        path.write_text(text.replace("[sampling]\n", f"[sampling]\n{line}\n"))
        with pytest.raises(PresetError, match=line.split()[0]):
            load_preset(str(path))
