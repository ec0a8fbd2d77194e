"""Following the player: controls taken from the prompt (models/follow.py), by hand."""

from __future__ import annotations

import argparse
import gc

import numpy as np
import pytest
import torch

from livegen.kernels.tokenizer import Notes, encode_notes
from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, NUM_EVENTS, TIME_SHIFT, VELOCITY, VOCAB_SIZE
from livegen.models.follow import QUOTA_NATS, Follower, FollowSettings
from livegen.models.grammar import MODEL, GrammarState
from livegen.models.preset import SamplingDefaults
from livegen.models.sampling import SamplingParams, allowed_mask


def prompt() -> tuple[list[int], int]:
    """Two-note chords (60 + 67) every 0.5 s for 4 s, each 0.25 s long: 4 notes/s, two
    voices, pitches 60..67."""
    starts = np.repeat(np.arange(8) * 0.5, 2)
    pitch = np.tile([60, 67], 8)
    tokens = [
        int(t) for t in encode_notes(Notes(starts, starts + 0.25, pitch, [80] * 16, [0] * 16))
    ]
    state = GrammarState()
    state.extend(tokens, 0)
    return tokens, state.step


def test_static_controls_come_from_the_prompt() -> None:
    tokens, step = prompt()
    settings = FollowSettings(polyphony=True, note_length=True, register_margin=2)
    follower = Follower(tokens, step, SamplingParams(), settings)
    p = follower.params(step)
    assert (p.low_pitch, p.high_pitch) == (58, 69)
    assert p.max_polyphony == 2
    assert p.max_note_seconds == pytest.approx(0.375)  # 1.5 x 0.25 s
    assert follower.target_rate == pytest.approx(16 / 3.75)  # up to the last note-off
    off = Follower(tokens, step, SamplingParams(), FollowSettings()).params(step)
    assert off == SamplingParams() and not FollowSettings().active


def test_density_bias_pushes_towards_the_prompts_rate() -> None:
    tokens, step = prompt()
    follower = Follower(tokens, step, SamplingParams(), FollowSettings(density_gain=1.0))
    assert follower.params(step + 100).density > 0  # a second of nothing: play
    for k in range(40):  # then 40 notes in the next half second: far too busy
        follower.observe(NOTE_ON + 60, step + 100 + k)
    assert follower.params(step + 150).density < 0


def test_preset_keys_turn_it_on() -> None:
    defaults = SamplingDefaults(follow_density=0.5, follow_polyphony=True, follow_register=4)
    settings = FollowSettings.from_defaults(defaults)
    assert settings == FollowSettings(density_gain=0.5, polyphony=True, register_margin=4)
    assert settings.active
    quota = FollowSettings.from_defaults(SamplingDefaults(follow_key_quota=True))
    assert quota == FollowSettings(key_quota=True) and quota.active


def test_key_lock_keeps_to_the_prompts_pitch_classes() -> None:
    starts = np.arange(7) * 0.5
    scale = [60, 62, 64, 65, 67, 69, 71]  # C major
    tokens = [int(t) for t in encode_notes(Notes(starts, starts + 0.4, scale, [80] * 7, [0] * 7))]
    follower = Follower(tokens, 340, SamplingParams(), FollowSettings(key=True))
    allowed = follower.restrict(None)
    ons = [p for p in range(128) if allowed[NOTE_ON + p]]
    assert {p % 12 for p in ons} == {0, 2, 4, 5, 7, 9, 11} and len(ons) == 75
    assert bool(allowed[NOTE_OFF:].all())  # everything but note-ons stays allowed
    three = Follower(tokens[:9], 150, SamplingParams(), FollowSettings(key=True))
    assert three.restrict(None) is None  # three pitch classes say too little about a key


def test_rhythm_keeps_onsets_on_the_prompts_pulse() -> None:
    """The prompt's chords come every 0.5 s from 0: a pulse of 50 steps at phase 0. At step
    400 (on it) time may move 50 or 100 steps and a note may start; at 410 (off it) only to
    440 or 490, and no note (nor a velocity, which only comes before one) may start."""
    tokens, step = prompt()
    params = SamplingParams()
    follower = Follower(tokens, step, params, FollowSettings(rhythm=1))
    assert follower.pulse is not None and follower.pulse.period == pytest.approx(50.0)
    state = GrammarState()
    state.extend(tokens, 0)
    on = follower.restrict(None, 400, state)
    assert shifts(on) == [50, 100] and bool(on[NOTE_ON:NOTE_OFF].all())
    off = allowed_mask(state, params, follower.restrict(None, 410, state))
    assert shifts(off) == [40, 90]
    assert not off[NOTE_ON:NOTE_OFF].any() and not off[VELOCITY:NUM_EVENTS].any()


def test_rhythm_in_parts_halves_a_coarse_grid_only() -> None:
    """rhythm = 2 halves the 50-step pulse: from 400, shifts of 25, 50, 75, 100. A pulse of
    12.5 steps (sixteenths at 120 bpm) is fine enough already: it stays whole."""
    tokens, step = prompt()
    follower = Follower(tokens, step, SamplingParams(), FollowSettings(rhythm=2))
    state = GrammarState()
    state.extend(tokens, 0)
    assert shifts(follower.restrict(None, 400, state)) == [25, 50, 75, 100]
    starts = np.floor(np.array([0, 2, 3, 4, 6, 7, 8, 10, 11, 12]) * 12.5 + 0.5) / 100
    notes = Notes(starts, starts + 0.1, [60] * 10, [80] * 10, [0] * 10)
    sixteenths = [int(t) for t in encode_notes(notes)]
    fine = Follower(sixteenths, 160, SamplingParams(), FollowSettings(rhythm=2))
    assert fine.pulse is not None and fine.pulse.period == pytest.approx(12.5, abs=0.02)


def test_rhythm_walks_to_the_grid_when_a_note_must_end_first() -> None:
    """A model note 0.3 s long at most, opened at 400: at 410 it must end within 20 steps,
    before the grid point at 450, so time may move in shorter steps (still no note-on off the
    grid); a turn that must open with a note now is left alone."""
    tokens, step = prompt()
    params = SamplingParams(max_note_seconds=0.3)
    follower = Follower(tokens, step, params, FollowSettings(rhythm=1))
    state = GrammarState()
    state.extend(tokens, 0)  # the prompt's last note ends at 375
    state.extend([TIME_SHIFT + 24, NOTE_ON + 72, TIME_SHIFT + 9], MODEL)  # 400: a note; 410
    allowed = allowed_mask(state, params, follower.restrict(None, state.step, state))
    assert shifts(allowed) == list(range(1, 21)) and not allowed[NOTE_ON:NOTE_OFF].any()
    opening = torch.ones(VOCAB_SIZE, dtype=torch.bool)
    opening[TIME_SHIFT:VELOCITY] = False
    assert follower.restrict(opening, state.step, state) is opening


def test_no_rhythm_rule_without_a_pulse() -> None:
    starts = np.array([0.0, 0.13, 0.61, 0.7, 1.43, 1.52, 2.37])  # free time, few onsets
    notes = Notes(starts, starts + 0.1, [60] * 7, [80] * 7, [0] * 7)
    tokens = [int(t) for t in encode_notes(notes)]
    follower = Follower(tokens, 250, SamplingParams(), FollowSettings(rhythm=1))
    assert follower.pulse is None and follower.restrict(None, 250, GrammarState()) is None
    assert FollowSettings.from_defaults(SamplingDefaults(follow_rhythm=2)).rhythm == 2


def shifts(allowed: torch.Tensor) -> list[int]:
    """The time shifts (in steps) a mask allows."""
    return [k + 1 for k in torch.nonzero(allowed[TIME_SHIFT:VELOCITY]).flatten().tolist()]


def test_key_bias_steers_towards_the_prompts_pitch_classes() -> None:
    """C four times, G four times: smoothed by half a note per class, the target shares are
    C = G = 4.5/14, every other class 0.5/14; the model starts as if it had played 8 notes in
    those shares (no bias). One C# later it has played 9: C# 1/7 against 1/28 wanted, C 2/7
    against 9/28. With gain 2: C# 2 ln(1/4), C 2 ln(9/8), on every octave's note-on."""
    starts = np.arange(8) * 0.5
    pitch = [60, 67] * 4
    tokens = [int(t) for t in encode_notes(Notes(starts, starts + 0.4, pitch, [80] * 8, [0] * 8))]
    follower = Follower(tokens, 390, SamplingParams(), FollowSettings(key_bias=2.0))
    assert follower.bias.abs().max().item() == pytest.approx(0.0, abs=1e-9)
    follower.observe(NOTE_ON + 61, 400)
    bias = follower.bias
    assert bias[NOTE_ON + 49].item() == pytest.approx(2 * np.log(1 / 4), abs=1e-6)
    assert bias[NOTE_ON + 72].item() == pytest.approx(2 * np.log(9 / 8), abs=1e-6)
    assert not bias[NOTE_OFF:].any()
    few = Follower(tokens[:12], 150, SamplingParams(), FollowSettings(key_bias=2.0))
    assert few.bias is None  # fewer than eight notes say too little


def test_the_key_is_read_over_a_longer_window_than_the_texture() -> None:
    """C and G for the first 8 s, then E and B for 7.5 s (two notes a second): the texture's
    window (7.5 s) holds only E and B, the key's (15 s from the end, so from 0.4 s) both, so
    the key steer aims at C and G too: 7 Cs (the first is before 0.4 s) and 8 Gs among 30
    notes (smoothed by half a note a class: 7.5/36 and 8.5/36)."""
    starts = np.arange(31) * 0.5
    pitch = [60, 67] * 8 + [64, 71] * 7 + [64]
    n = len(starts)
    tokens = [int(t) for t in encode_notes(Notes(starts, starts + 0.4, pitch, [80] * n, [0] * n))]
    follower = Follower(tokens, 1540, SamplingParams(), FollowSettings(key_bias=2.0))
    assert follower.key_steer.target[0] == pytest.approx(7.5 / 36)
    assert follower.key_steer.target[7] == pytest.approx(8.5 / 36)
    short = FollowSettings(key_bias=2.0, long_window_seconds=7.5)
    assert Follower(tokens, 1540, SamplingParams(), short).key_steer.target[0] < 0.05


def test_the_jam_can_turn_the_rhythm_follow_off(tmp_path) -> None:
    """A preset with follow_rhythm = 1 and follow_rhythm_draw: the decode worker follows the
    rhythm, and draws it, unless the jam says --no-follow-rhythm (WorkerSpec.follow_rhythm
    False)."""
    from livegen.commands.jam import add_arguments
    from livegen.controls import JamSettings
    from livegen.decode_worker import WorkerSpec, build_core
    from livegen.models.preset import load_preset, save_preset
    from tests.presets import tiny_preset

    path = tiny_preset(tmp_path)
    preset = load_preset(str(path))
    preset.sampling.follow_rhythm = 1
    preset.sampling.follow_rhythm_draw = True
    save_preset(preset, path)
    for follow in (True, False):
        core = build_core(WorkerSpec(str(path), 0.0, follow_rhythm=follow), lambda m: None)
        gc.unfreeze()  # build_core freezes what it loaded: the worker's, not this test's
        assert core.turns.follow.rhythm == (1 if follow else 0)
        assert core.turns.follow.rhythm_draw == follow  # the drawn rhythm goes with it
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--no-follow-rhythm"]).no_follow_rhythm
    assert JamSettings().follow_rhythm and not parser.parse_args([]).no_follow_rhythm


def test_a_models_onsets_land_on_the_prompts_pulse(tmp_path) -> None:
    """A random tiny model continues a prompt of notes every 0.25 s (ending on its grid, at
    4 s), four seeds: with the rhythm follow every onset it plays is on that 25-step grid;
    without, not."""
    from livegen.kernels.tokenizer import decode_tokens
    from livegen.models.continuation import continue_tokens, time_shift_tokens
    from livegen.models.loading import load_model_for
    from livegen.models.streaming import StreamingDecoder
    from tests.presets import tiny_preset

    decoder = StreamingDecoder(load_model_for(tiny_preset(tmp_path).with_suffix("")).model)
    starts = np.arange(16) * 0.25
    notes = Notes(starts, starts + 0.2, [60, 64, 67, 72] * 4, [80] * 16, [0] * 16)
    prompt = [int(t) for t in encode_notes(notes)] + time_shift_tokens(5)  # to 4.00 s
    params = SamplingParams(temperature=1.5, top_p=1.0)
    for rhythm in (1, 0):
        onsets = []
        for seed in range(4):
            follow = FollowSettings(rhythm=rhythm)
            result = continue_tokens(decoder, prompt, params, 3.0, seed=seed, follow=follow)
            played = decode_tokens([*prompt, *result.generated])
            onsets += np.round(played.start[played.start >= 4.0] * 100).astype(int).tolist()
        assert len(onsets) >= 10
        assert (np.array(onsets) % 25 == 0).all() == bool(rhythm), onsets


@pytest.mark.parametrize("value", ["9", "true", "-1"])
def test_a_bad_follow_rhythm_in_a_preset_is_one_clear_error(tmp_path, value: str) -> None:
    from livegen.models.preset import PresetError, load_preset
    from tests.presets import tiny_preset

    path = tiny_preset(tmp_path)
    text = path.read_text().replace("[sampling]\n", f"[sampling]\nfollow_rhythm = {value}\n")
    path.write_text(text)
    with pytest.raises(PresetError, match="follow_rhythm"):
        load_preset(str(path))


# The quota deals pitch classes where the rhythm plan deals the onsets.
QUOTA = FollowSettings(key_quota=True, rhythm_draw=True)


def alternating_c_and_g() -> tuple[list[int], int]:
    """C and G in turns, four a second for 10 s: 20 of each."""
    starts = np.arange(40) * 0.25
    pitch = [60, 67] * 20
    tokens = [int(t) for t in encode_notes(Notes(starts, starts + 0.2, pitch, [80] * 40, [0] * 40))]
    state = GrammarState()
    state.extend(tokens, 0)
    return tokens, state.step


def test_key_quota_rules_out_a_class_over_its_share() -> None:
    """C and G are half the prompt's notes each. Before the model plays, each is half a note
    short of its share of the next note, the slack at first: both are free, every class the
    prompt never played is ruled out. After one C, C is at its share of two notes and G a
    note short: only G is free. After C and G, both are free again. Notes of a class the
    prompt never played count too: after three Es the prompt's C and G are both behind."""
    tokens, step = alternating_c_and_g()
    follower = Follower(tokens, step, SamplingParams(), QUOTA)
    free = {60, 67}
    for pitch in range(60, 72):
        assert follower.bias[NOTE_ON + pitch].item() == (0.0 if pitch in free else -QUOTA_NATS)
    follower.observe(NOTE_ON + 72, step + 10)  # a C, an octave up
    bias = follower.bias
    assert bias[NOTE_ON + 60].item() == bias[NOTE_ON + 61].item() == -QUOTA_NATS
    assert bias[NOTE_ON + 55].item() == bias[NOTE_ON + 67].item() == 0.0  # G, any octave
    follower.observe(NOTE_ON + 55, step + 20)
    assert follower.bias[NOTE_ON + 48].item() == follower.bias[NOTE_ON + 79].item() == 0.0
    assert follower.bias[NOTE_ON + 64].item() == -QUOTA_NATS
    outside = Follower(tokens, step, SamplingParams(), QUOTA)
    for k in range(3):
        outside.observe(NOTE_ON + 64, step + 10 * (k + 1))
    for pitch in range(60, 72):
        assert outside.bias[NOTE_ON + pitch].item() == (0.0 if pitch in free else -QUOTA_NATS)


def test_key_quota_slack_grows_with_the_notes_played() -> None:
    """After 30 notes in the prompt's shares (15 C, 15 G) the slack is two notes: two more Cs
    leave G one and a half short of its half of the next (33) notes, and nothing is ruled
    out; a third puts G two behind, and only G is free. Early on, half a note was enough
    (above)."""
    tokens, step = alternating_c_and_g()
    follower = Follower(tokens, step, SamplingParams(), QUOTA)
    for k, pitch in enumerate([60, 67] * 15 + [60] * 2):
        follower.observe(NOTE_ON + pitch, step + 10 * (k + 1))
    assert not (follower.bias[NOTE_ON : NOTE_ON + 128] == -QUOTA_NATS).any()
    follower.observe(NOTE_ON + 60, step + 400)
    assert follower.bias[NOTE_ON + 60].item() == -QUOTA_NATS
    assert follower.bias[NOTE_ON + 67].item() == 0.0


def test_key_quota_holds_a_model_to_the_prompts_shares() -> None:
    """A model that wants C above all (5 nats over G, 8 over the rest), 60 notes chosen by
    its best biased note-on. Under the steer alone (gain 3) it keeps to C: the steer's pull is
    capped at 6 nats either way. Under the quota alone it plays C and G in turns while the
    slack is small, and C ahead of G once it has grown (two notes of slack let C lead by
    three): 31 and 29 of 60."""
    tokens, step = alternating_c_and_g()
    logits = torch.full((128,), -8.0)
    logits[torch.arange(128) % 12 == 0] = 0.0
    logits[torch.arange(128) % 12 == 7] = -5.0
    counts = {}
    for name, settings in {
        "steer": FollowSettings(key_bias=3.0, rhythm_draw=True),
        "quota": QUOTA,
    }.items():
        follower = Follower(tokens, step, SamplingParams(), settings)
        played = []
        for k in range(60):
            pitch = int(torch.argmax(logits + follower.bias[NOTE_ON : NOTE_ON + 128]))
            follower.observe(NOTE_ON + pitch, step + 10 * (k + 1))
            played.append(pitch % 12)
        counts[name] = np.bincount(played, minlength=12)
    assert counts["steer"][0] > 45
    assert (counts["quota"][0], counts["quota"][7]) == (31, 29)


def test_key_quota_keeps_out_what_the_prompt_never_played() -> None:
    """C, D, E, F and G four times each: five classes, enough to tell a key. Before the model
    plays, no class is half a note short (a fifth each), yet the classes the prompt never
    played are ruled out, the steer's smoothing would play them. After C, D, C, D, C, D, C, D,
    E, F (ten notes: a slack of two thirds of a note), G is 2.2 notes short and E and F 1.2:
    only they are free."""
    starts = np.arange(20) * 0.25
    pitch = [60, 62, 64, 65, 67] * 4
    tokens = [int(t) for t in encode_notes(Notes(starts, starts + 0.2, pitch, [80] * 20, [0] * 20))]
    follower = Follower(tokens, 510, SamplingParams(), QUOTA)
    free = {60, 62, 64, 65, 67}
    for pitch in range(60, 72):
        assert follower.bias[NOTE_ON + pitch].item() == (0.0 if pitch in free else -QUOTA_NATS)
    for k, pitch in enumerate([60, 62] * 4 + [64, 65]):
        follower.observe(NOTE_ON + pitch, 520 + 10 * k)
    free = {64, 65, 67}
    for pitch in range(60, 72):
        assert follower.bias[NOTE_ON + pitch].item() == (0.0 if pitch in free else -QUOTA_NATS)


def test_key_quota_waits_for_a_plan() -> None:
    """Four chords of three notes: too few onsets for the rhythm plan, so the model decides
    when a note comes; a class ruled out there would not be made up by another, the model
    would wait instead (a call-mode answer fell from 12 notes to 7). No class is ruled out."""
    starts = np.repeat(np.arange(4) * 0.5, 3)
    pitch = [60, 64, 67, 62, 65, 69, 64, 67, 71, 60, 64, 67]
    tokens = [int(t) for t in encode_notes(Notes(starts, starts + 0.4, pitch, [80] * 12, [0] * 12))]
    follower = Follower(tokens, 190, SamplingParams(), QUOTA)
    assert follower.plan is None and follower.key_steer is not None
    follower.observe(NOTE_ON + 60, 200)
    assert follower.bias.abs().max().item() == 0.0


def high_leaning_model() -> torch.Tensor:
    """Note-on logits of a model that leans high: +0.25 nats per semitone (C6 is e^6 times
    as likely as C4)."""
    return torch.arange(128, dtype=torch.float32) * 0.25


def played_mean(follower: Follower, step: int, notes: int, low: int, high: int) -> float:
    """The mean pitch of `notes` note-ons sampled (seeded) from the high-leaning model plus
    the follower's bias, within low..high (the register range): the last half's."""
    logits = high_leaning_model()
    generator = torch.Generator().manual_seed(0)
    played = []
    for k in range(notes):
        bias = follower.bias
        biased = logits + (0 if bias is None else bias[NOTE_ON : NOTE_ON + 128])
        window = torch.softmax(biased[low : high + 1], 0)
        pitch = low + int(torch.multinomial(window, 1, generator=generator))
        follower.observe(NOTE_ON + pitch, step + 10 * (k + 1))
        played.append(pitch)
    return float(np.mean(played[notes // 2 :]))


def test_register_steer_brings_a_high_leaning_model_to_the_players_mean_pitch() -> None:
    """The prompt's chords (60 + 67) centre on 63.5; within its range widened by 3 (57..70),
    the high-leaning model alone sits over 2.5 semitones above the player (66.9). The
    steer's tilt grows until the model's notes centre on the player's mean pitch."""
    tokens, step = prompt()
    alone = Follower(tokens, step, SamplingParams(), FollowSettings(register_margin=3))
    assert alone.bias is None
    assert played_mean(alone, step, 200, 57, 70) > 66.0
    steered = Follower(
        tokens, step, SamplingParams(), FollowSettings(register_margin=3, register_steer=1.0)
    )
    assert steered.register_steer is not None and steered.register_steer.target == 63.5
    assert abs(played_mean(steered, step, 200, 57, 70) - 63.5) < 1.0


def test_register_steer_tilts_against_the_side_the_model_kept_to() -> None:
    tokens, step = prompt()
    settings = FollowSettings(key_bias=3.0, register_steer=2.0)
    follower = Follower(tokens, step, SamplingParams(), settings)
    key_only = follower.key_steer.bias.clone()
    assert torch.equal(follower.bias, key_only)  # no tilt before the model plays
    for k in range(3):  # three notes 11.5 semitones above the mean pitch
        follower.observe(NOTE_ON + 75, step + 10 * (k + 1))
    tilt = follower.bias - follower.key_steer.bias
    assert follower.register_steer.tilt == pytest.approx(3 * 2.0 * 11.5 / 12)
    assert tilt[NOTE_ON + 51] > 0 > tilt[NOTE_ON + 76]  # lower favoured, higher not
    assert tilt[NOTE_ON + 63].abs() < 0.3  # the player's mean pitch hardly moves
    assert tilt[NOTE_ON : NOTE_ON + 128].abs().max() == pytest.approx(6.0)  # capped
    assert not tilt[NOTE_ON + 128 :].any()  # note-ons only


def test_register_steer_preset_key() -> None:
    settings = FollowSettings.from_defaults(SamplingDefaults(follow_register_steer=0.5))
    assert settings == FollowSettings(register_steer=0.5) and settings.active
