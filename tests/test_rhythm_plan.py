"""The rhythm plan (models/rhythm_plan.py): the model's onsets, chords and note lengths drawn
from the player's, checked mask by mask on hand-made prompts, then on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from livegen.kernels.onset_patterns import (
    SLOT_STEPS,
    WINDOW_SLOTS,
    onset_slots,
    window_pattern,
    window_patterns,
)
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


def play_along(plan: RhythmPlan, onsets: int) -> list[int]:
    """The model's onsets when it starts one note at every instant the plan calls for."""
    played = []
    for k in range(onsets):
        step = plan.due
        plan.observe(NOTE_ON + 60 + k % 12, step)
        for extra in range(1, plan.chord):  # fill the chord the plan drew
            plan.observe(NOTE_ON + 72 + extra, step)
        played.append(step)
    return played


def test_a_round_of_the_deck_plays_the_players_intervals_exactly_in_a_new_order() -> None:
    """Intervals of 10, 20 and 30 in turn, 13 onsets: the plan deals the player's 12 intervals
    each once (the first before the model's first onset) before it deals any again, so the
    model's first 12 intervals are exactly the player's, in another order."""
    player = np.cumsum([0, *([10, 20, 30] * 4)])
    plan = RhythmPlan(player, np.full(13, 5), int(player[-1]), None, seed=3)
    model = play_along(plan, 12)
    intervals = np.diff([int(player[-1]), *model])
    assert sorted(intervals.tolist()) == sorted(np.diff(player).tolist())
    assert intervals.tolist() != np.diff(player).tolist()


def test_in_the_players_own_order_a_round_is_their_phrase_again() -> None:
    """Unshuffled and unvaried, the deck deals the player's onsets in the order they played
    them, round after round: the model's intervals are theirs, in their order."""
    player = np.cumsum([0, *([10, 20, 30, 10] * 3)])
    plan = RhythmPlan(player, np.full(13, 5), int(player[-1]), None, seed=3, shuffle=False)
    model = play_along(plan, 36)
    intervals = np.diff([int(player[-1]), *model]).tolist()
    theirs = np.diff(player).tolist()
    assert intervals == theirs * 3


def test_in_the_players_own_order_a_repeat_is_changed_by_two_neighbours_trading_places() -> None:
    """The player's bar of 15, 15, 30, 20, dealt in their order, would repeat their seconds
    every time. Varied, no second the model closes is theirs, every interval is one of theirs,
    and the order stays mostly theirs: most intervals are the one the player played there."""
    bar = [15, 15, 30, 20]
    player = np.cumsum([0, *(bar * 3)])
    plan = RhythmPlan(player, np.full(13, 5), int(player[-1]), None, 1, 1.0, shuffle=False)
    model = play_along(plan, 120)
    intervals = np.diff([int(player[-1]), *model])
    assert not any(repeated_seconds(player, model))
    assert set(intervals.tolist()) == set(bar)
    theirs = np.resize(np.diff(player), len(intervals))
    assert 0.5 < np.mean(intervals == theirs) < 1.0


def repeated_seconds(player: np.ndarray, model: list[int]) -> list[bool]:
    """For each model onset: does the second it closes repeat one of the player's seconds?
    (the definition the measure's novelty counts by, computed here from the onsets alone)"""
    heard = onset_slots(player)
    known = window_patterns(heard, int(heard[0]), int(heard[-1]) - WINDOW_SLOTS + 1)
    slots = onset_slots(np.concatenate([player, model]))
    ends = [step // SLOT_STEPS for step in model]
    return [window_pattern(slots, end - WINDOW_SLOTS + 1) in known for end in ends]


def test_a_steady_rhythm_is_varied_where_it_would_repeat_the_players_second() -> None:
    """The player plays every 10 steps for 3 s. Without variation the model does too, and
    every second it closes is one the player played. With it, no second is: each onset that
    would close one is left out (20) or split (5 + 5), in turns, so 300 onsets still take
    3,000 steps (the player's rate)."""
    player = np.arange(0, 300, 10)
    steady = play_along(RhythmPlan(player, np.full(30, 5), 290, None, seed=0), 300)
    assert set(np.diff(steady).tolist()) == {10}
    assert all(repeated_seconds(player, steady))
    varied = play_along(RhythmPlan(player, np.full(30, 5), 290, None, seed=0, variation=1.0), 300)
    assert set(np.diff(varied).tolist()) == {5, 10, 20}
    assert not any(repeated_seconds(player, varied))
    assert abs(varied[-1] - steady[-1]) <= 10  # as many splits as joins, give or take one


@pytest.mark.parametrize("seed", [1, 4])
@pytest.mark.parametrize("bar", [[10, 10, 20], [15, 15, 30, 20]])
def test_a_varied_bar_is_made_new_by_a_new_order_before_any_onset_is_split(bar, seed) -> None:
    """The player repeats a bar of two or three intervals for 3 s. Where the card dealt would
    close one of their seconds, another card left in the round that closes a new one is dealt
    instead: no second the model closes is the player's, yet every interval it plays is one of
    theirs (nothing was halved or joined into a 5 or a 45), as often as they played it, within
    two over the rounds dealt (a round's last card may be exchanged for the next round's
    first, so a card can cross a round's end)."""
    player = np.cumsum([0, *(bar * (300 // sum(bar)))])
    plan = RhythmPlan(player, np.full(len(player), 5), int(player[-1]), None, seed, 1.0)
    model = play_along(plan, 150)
    intervals = np.diff([int(player[-1]), *model])
    assert not any(repeated_seconds(player, model))
    assert set(intervals.tolist()) == set(bar)
    round_ = len(player) - 1
    rounds = len(intervals) // round_
    dealt = np.bincount(intervals[: rounds * round_], minlength=50)
    theirs = np.bincount(np.diff(player), minlength=50) * rounds
    assert np.abs(dealt - theirs).max() <= 2


def test_a_variation_never_thins_a_second_below_a_figure() -> None:
    """The player plays every 40 steps: three onsets a second. A join that leaves a
    second two onsets is no new figure (a second of two onsets repeats any slow rhythm), so
    it is never taken: every second the varied model closes still holds three or more."""
    player = np.arange(0, 800, 40)
    plan = RhythmPlan(player, np.full(len(player), 5), int(player[-1]), None, 0, 1.0)
    model = play_along(plan, 200)
    slots = onset_slots(np.concatenate([player, model]))
    seconds = [window_pattern(slots, step // SLOT_STEPS - WINDOW_SLOTS + 1) for step in model]
    assert min(second.bit_count() for second in seconds) >= 3
    assert 20 in np.diff(model)  # splits were made instead


def test_a_variation_is_new_against_all_the_player_remembers() -> None:
    """The player played a bar of 10, 10, 20 for 3 s, then steady 10s for 3 s. The plan deals
    the steady part; its variations (joins into 20, splits into 5s) could land on the earlier
    bar. Given that earlier part as memory, no second the model closes is one the player
    played anywhere in those 6 s; without it, some are."""
    early = np.cumsum(np.tile([10, 10, 20], 8)) - 10  # 0 .. 310
    recent = 320 + np.arange(0, 300, 10)
    everything = np.concatenate([early, recent])
    lengths = np.full(len(recent), 5)

    def varied(memory: np.ndarray | None) -> list[int]:
        plan = RhythmPlan(recent, lengths, int(recent[-1]), None, 0, 1.0, memory)
        return play_along(plan, 200)

    assert not any(repeated_seconds(everything, varied(early)))
    assert any(repeated_seconds(everything, varied(None)))


def test_variations_are_made_of_the_players_own_intervals_where_they_can_be() -> None:
    """The player repeats a bar of 20, 20, 40 for 1.2 s. Drawn alone, the model's intervals
    close one of the player's seconds again 4 times in 10. Varied, they hardly ever do, mostly
    with joins of 20 + 20 and splits of 40 into 20 + 20 (intervals the player plays): halves
    of 20 and other joins, the fallback, stay a small share."""
    player = np.cumsum(np.tile([20, 20, 40], 5))
    lengths = np.full(len(player), 5)
    drawn = play_along(RhythmPlan(player, lengths, int(player[-1]), None, 1), 200)
    assert np.mean(repeated_seconds(player, drawn)) > 0.3
    varied = play_along(RhythmPlan(player, lengths, int(player[-1]), None, 1, 1.0), 200)
    assert np.mean(repeated_seconds(player, varied)) < 0.1
    assert np.isin(np.diff(varied), [20, 40]).mean() > 0.8


def test_a_free_rhythm_with_no_usual_interval_is_varied_by_cuts_and_joins() -> None:
    """Eleven intervals, each a new one (none is a tenth of them): no variation can be made of
    the player's usual intervals, so the candidates are the drawn interval cut in halves and
    thirds, then joined with the next one dealt (this crashed on the empty list of usual
    intervals: found by the call-mode measure on a held-out song)."""
    player = np.cumsum([0, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29])
    plan = RhythmPlan(player, np.full(12, 5), int(player[-1]), None, 0, 1.0)
    assert plan.vocab.size == 0
    after = int(player[-1])
    splits = plan.variations(after, after + 30)
    assert splits[:3] == [
        (after + 15, after + 30),
        (after + 10, after + 30),
        (after + 20, after + 30),
    ]
    (join, none), *_ = splits[3:]
    assert none is None and join - (after + 30) in set(np.diff(player).tolist())


def test_looking_at_variations_deals_no_card() -> None:
    """The plain join looks at the next card's interval; a candidate that is not taken must
    not take a card from the round, or some of the player's onsets would never be played."""
    player = np.cumsum([0, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29])
    plan = RhythmPlan(player, np.full(12, 5), int(player[-1]), None, 0, 1.0)
    left = list(plan.deck.left)
    after = int(player[-1])
    (join, none) = plan.variations(after, after + 30)[-1]
    assert none is None and join == after + 30 + int(plan.intervals[left[-1]])
    assert plan.deck.left == left


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


def test_under_a_plan_the_caps_make_room_for_the_players_texture() -> None:
    """Chords of twelve notes every 0.25 s, held 0.5 s (the last 3 s long): 24 notes sound at
    once. A polyphony cap of 10 would stall the plan's onsets until notes end; under the plan
    it is twice the player's peak, 48. The note-length guard (1.5 x the 90th percentile,
    0.75 s) would cut the long notes the plan draws; under the plan it is the longest, 3 s,
    within the preset's 4 s. Without the plan, both stand as they were."""
    starts = np.repeat(np.arange(16) * 0.25, 12)
    pitches = np.tile(np.arange(48, 72, 2), 16)
    ends = starts + np.where(np.arange(len(starts)) < len(starts) - 12, 0.5, 3.0)
    notes = Notes(starts, ends, pitches, [80] * len(starts), [0] * len(starts))
    tokens = [int(t) for t in encode_notes(notes)]
    base = SamplingParams(max_polyphony=10, max_note_seconds=4.0)
    plan = FollowSettings(rhythm_draw=True, note_length=True)
    planned = Follower(tokens, 675, base, plan)
    assert planned.plan is not None and planned.base.max_polyphony == 48
    assert planned.base.max_note_seconds == pytest.approx(3.0)
    free = Follower(tokens, 675, base, FollowSettings(rhythm_draw=False, note_length=True))
    assert free.plan is None and free.base.max_polyphony == 10
    assert free.base.max_note_seconds == pytest.approx(0.75)


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
        SamplingDefaults(
            follow_rhythm_draw=True, follow_rhythm_variation=0.25, follow_rhythm_shuffle=False
        )
    )
    assert settings.rhythm_draw and settings.rhythm_variation == 0.25 and settings.active
    assert not settings.rhythm_shuffle and FollowSettings.from_defaults(object()).rhythm_shuffle
    path = tiny_preset(tmp_path)
    text = "\n".join(
        line
        for line in path.read_text().splitlines()
        if not line.startswith(("follow_rhythm_", "follow_register_steer"))
    )
    for line in (
        "follow_rhythm_draw = 2",
        "follow_rhythm_variation = 1.5",
        "follow_register_steer = -1",
        'follow_rhythm_shuffle = "no"',
    ):
        path.write_text(text.replace("[sampling]\n", f"[sampling]\n{line}\n"))
        with pytest.raises(PresetError, match=line.split()[0]):
            load_preset(str(path))
