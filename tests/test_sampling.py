"""The live controls: every mask, the grammar guard, the truncations and seeded determinism."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from livegen.kernels.tokenizer import decode_tokens
from livegen.kernels.vocab import (
    BEGIN,
    NOTE_OFF,
    NOTE_ON,
    NUM_EVENTS,
    TIME_SHIFT,
    VELOCITY,
    VOCAB_SIZE,
)
from livegen.models.config import PerceiverARConfig
from livegen.models.grammar import MODEL, PLAYER, GrammarState
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.preset import SamplingDefaults
from livegen.models.sampling import (
    SamplingParams,
    allowed_mask,
    forced_token,
    sample_token,
    transform,
)
from livegen.models.streaming import StreamingDecoder


def shift(steps: int) -> int:
    return TIME_SHIFT + steps - 1


def kept(x: torch.Tensor) -> set[int]:
    return set(torch.isfinite(x).nonzero().flatten().tolist())


def open_params(**changes) -> SamplingParams:
    """No truncation: only the masks act."""
    return SamplingParams(top_p=1.0, **changes)


# ---- masks -------------------------------------------------------------------------------------


def test_register_mask_and_specials():
    params = open_params(low_pitch=48, high_pitch=72)
    allowed = allowed_mask(GrammarState(), params)
    ons = {t - NOTE_ON for t in allowed.nonzero().flatten().tolist() if t < NOTE_OFF}
    assert ons == set(range(48, 73))
    assert not allowed[NUM_EVENTS:].any()  # PAD, BEGIN, END are never the model's to write
    assert allowed[VELOCITY:NUM_EVENTS].all()
    # Nothing is open, so no NOTE_OFF makes sense.
    assert not allowed[NOTE_OFF:TIME_SHIFT].any()


def test_ownership_masks():
    state = GrammarState()
    state.extend([NOTE_ON + 60, NOTE_ON + 62], PLAYER)
    state.extend([NOTE_ON + 64], MODEL)
    allowed = allowed_mask(state, open_params())
    assert not allowed[NOTE_ON + 60] and not allowed[NOTE_ON + 62]  # player holds them
    assert not allowed[NOTE_OFF + 60] and not allowed[NOTE_OFF + 62]  # not the model's to end
    assert allowed[NOTE_OFF + 64]  # its own
    assert allowed[NOTE_ON + 64] and allowed[NOTE_ON + 61]
    state.update(NOTE_OFF + 60, PLAYER)
    assert allowed_mask(state, open_params())[NOTE_ON + 60]  # released: free again


def test_model_may_not_queue_behind_a_player_note():
    """The player strikes a pitch the model holds; the model may end its own (oldest) note but
    may not start the pitch again while the player's note of it sounds."""
    state = GrammarState()
    state.update(NOTE_ON + 60, MODEL)
    state.update(NOTE_ON + 60, PLAYER)
    allowed = allowed_mask(state, open_params())
    assert allowed[NOTE_OFF + 60] and not allowed[NOTE_ON + 60]
    state.update(NOTE_OFF + 60, MODEL)
    assert state.open_notes[60][0] == PLAYER
    assert not allowed_mask(state, open_params())[NOTE_OFF + 60]


def test_polyphony_mask():
    state = GrammarState()
    params = open_params(max_polyphony=3)
    state.extend([NOTE_ON + 60, NOTE_ON + 64, NOTE_ON + 60], MODEL)  # a re-strike counts too
    assert state.model_polyphony() == 3
    assert not allowed_mask(state, params)[NOTE_ON:NOTE_OFF].any()
    state.update(NOTE_OFF + 60, MODEL)
    assert allowed_mask(state, params)[NOTE_ON:NOTE_OFF].any()
    # Player notes do not count against the model's polyphony.
    state.extend([NOTE_ON + 40, NOTE_ON + 41, NOTE_ON + 42], PLAYER)
    assert state.model_polyphony() == 2


def test_density_shifts_mass_to_note_ons():
    logits = torch.randn(VOCAB_SIZE, generator=torch.Generator().manual_seed(0))
    state, mass = GrammarState(), []
    for density in (-3.0, 0.0, 3.0):
        x = transform(logits, allowed_mask(state, open_params()), open_params(density=density))
        mass.append(float(torch.softmax(x, -1)[NOTE_ON:NOTE_OFF].sum()))
    assert mass[0] < mass[1] < mass[2]
    assert mass[2] > 0.9 and mass[0] < 0.2


# ---- grammar guard -----------------------------------------------------------------------------


def test_guard_forces_the_overdue_note_off():
    params = open_params(max_note_seconds=0.5)
    state = GrammarState()
    state.update(NOTE_ON + 60, MODEL)
    state.update(shift(30), MODEL)
    # 20 steps left: time may advance by at most 20 steps now.
    allowed = allowed_mask(state, params)
    assert allowed[shift(20)] and not allowed[shift(21)]
    assert forced_token(state, params) is None
    state.update(shift(20), MODEL)
    assert forced_token(state, params) == NOTE_OFF + 60
    logits = torch.full((VOCAB_SIZE,), -50.0)
    logits[shift(100)] = 50.0  # the model badly wants to move on
    assert sample_token(logits, params, state) == NOTE_OFF + 60


def test_player_notes_are_never_forced_off():
    params = open_params(max_note_seconds=0.1)
    state = GrammarState()
    state.update(NOTE_ON + 60, PLAYER)
    state.update(shift(100), PLAYER)
    assert forced_token(state, params) is None
    assert state.steps_left(params.max_note_steps) == params.max_note_steps


def model_note_lengths(tokens: list[int]) -> np.ndarray:
    notes = decode_tokens(tokens)
    return notes.end - notes.start


@pytest.mark.parametrize("max_seconds", [0.05, 0.3, 1.0])
def test_guard_holds_over_long_random_sampling(max_seconds):
    """Adversarial logits (NOTE_ONs and long TIME_SHIFTs favoured, NOTE_OFFs suppressed):
    no model note ever lasts longer than max_note_seconds, and nothing stays open."""
    params = SamplingParams(
        temperature=1.5, top_p=0.98, max_note_seconds=max_seconds, max_polyphony=6
    )
    generator = torch.Generator().manual_seed(1)
    state, tokens = GrammarState(), []
    for _ in range(6000):
        logits = torch.randn(VOCAB_SIZE, generator=generator) * 2
        logits[NOTE_OFF:TIME_SHIFT] -= 6
        logits[TIME_SHIFT + 50 : VELOCITY] += 3
        token = sample_token(logits, params, state, generator)
        state.update(token, MODEL)
        tokens.append(token)
        assert state.steps_left(params.max_note_steps) >= 0
    tokens += state.closing_tokens(MODEL)
    lengths = model_note_lengths(tokens)
    assert len(lengths) > 200
    assert lengths.max() <= max_seconds + 1e-9
    assert sum(NOTE_OFF <= t < TIME_SHIFT for t in tokens) == len(lengths)  # every note closed


def test_guard_with_a_real_model_streaming():
    torch.manual_seed(0)
    model = PerceiverAR(PerceiverARConfig(context=32, latents=8, dim=32, heads=2, layers=1))
    decoder = StreamingDecoder(model.eval())
    params = SamplingParams(temperature=2.0, max_note_seconds=0.2)
    state, generator = GrammarState(), torch.Generator().manual_seed(3)
    decoder.append([NUM_EVENTS + 1])  # BEGIN
    tokens = [decoder.sample(params, state, generator) for _ in range(600)]
    tokens += state.closing_tokens(MODEL)
    assert all(t < NUM_EVENTS for t in tokens)
    assert model_note_lengths(tokens).max() <= 0.2 + 1e-9


def test_grammar_follows_decode_tokens_fifo():
    """The notes GrammarState thinks are open (pitch, onset) are exactly the ones the decoder
    leaves open: a NOTE_OFF ends the oldest open note of its pitch in both."""
    rng = random.Random(5)
    state, tokens = GrammarState(), []
    for _ in range(3000):
        kind = rng.random()
        if kind < 0.4:
            token = NOTE_ON + rng.randrange(60, 64)
        elif kind < 0.75:
            token = NOTE_OFF + rng.randrange(60, 64)
        else:
            token = shift(rng.randrange(1, 20))
        state.update(token, rng.choice((PLAYER, MODEL)))
        tokens.append(token)
    # Notes still open run to the end of the sequence: half a second after everything else.
    notes = decode_tokens(tokens + [shift(50)])
    end = state.step / 100 + 0.5
    left_open = sorted(
        (int(p), round(float(s) * 100))
        for p, s, e in zip(notes.pitch, notes.start, notes.end)
        if abs(e - end) < 1e-9
    )
    expected = sorted((p, onset) for p, fifo in state.notes.items() for _, onset in fifo)
    assert left_open == expected
    assert len(expected) > 0


def test_closing_tokens_end_only_the_owners_notes():
    state = GrammarState()
    state.extend([NOTE_ON + 60, NOTE_ON + 60, NOTE_ON + 70], MODEL)
    state.update(NOTE_ON + 50, PLAYER)
    assert state.closing_tokens(MODEL) == [NOTE_OFF + 60, NOTE_OFF + 60, NOTE_OFF + 70]
    assert state.closing_tokens(PLAYER) == [NOTE_OFF + 50]
    copy = state.snapshot()
    copy.update(NOTE_OFF + 50, PLAYER)
    assert 50 in state.open_notes and 50 not in copy.open_notes


# ---- truncation --------------------------------------------------------------------------------


def reference_truncation(logits: torch.Tensor, k: int, p: float, m: float) -> set[int]:
    """Plain-Python reference: top-k, then nucleus, then min-p, each renormalised."""
    values = logits.tolist()
    alive = sorted(range(len(values)), key=lambda i: -values[i])
    if k:
        alive = alive[:k]
    if p < 1:
        weights = [np.exp(values[i] - values[alive[0]]) for i in alive]
        total, above, nucleus = sum(weights), 0.0, []
        for i, w in zip(alive, weights):
            if above >= p:
                break
            nucleus.append(i)
            above += w / total
        alive = nucleus
    if m > 0:
        best = values[alive[0]]
        alive = [i for i in alive if np.exp(values[i] - best) >= m]
    return set(alive)


@pytest.mark.parametrize(
    "k, p, m", [(0, 0.9, 0.0), (10, 1.0, 0.0), (0, 1.0, 0.1), (20, 0.8, 0.05), (5, 0.5, 0.3)]
)
def test_truncation_matches_reference(k, p, m):
    generator = torch.Generator().manual_seed(k + int(100 * p))
    everything = torch.ones(VOCAB_SIZE, dtype=torch.bool)
    params = SamplingParams(top_k=k, top_p=p, min_p=m)
    for _ in range(20):
        logits = torch.randn(VOCAB_SIZE, generator=generator, dtype=torch.float64) * 3
        got = kept(transform(logits.float(), everything, params))
        assert got == reference_truncation(logits.float().double(), k, p, m)


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = torch.full((VOCAB_SIZE,), -1e9)
    logits[:4] = probs.log()
    everything = torch.ones(VOCAB_SIZE, dtype=torch.bool)
    assert kept(transform(logits, everything, SamplingParams(top_p=0.8))) == {0, 1}
    assert kept(transform(logits, everything, SamplingParams(top_p=0.81))) == {0, 1, 2}
    assert kept(transform(logits, everything, SamplingParams(top_p=0.3))) == {0}
    assert kept(transform(logits, everything, SamplingParams(min_p=0.35, top_p=1))) == {0, 1}
    assert kept(transform(logits, everything, SamplingParams(top_k=3, top_p=1))) == {0, 1, 2}


def test_temperature_scales_logits():
    logits = torch.randn(VOCAB_SIZE, generator=torch.Generator().manual_seed(2))
    everything = torch.ones(VOCAB_SIZE, dtype=torch.bool)
    hot = transform(logits, everything, SamplingParams(temperature=2.0, top_p=1.0))
    torch.testing.assert_close(hot, logits / 2)


def test_sampling_frequencies_follow_the_truncated_distribution():
    logits = torch.full((VOCAB_SIZE,), -30.0)
    logits[[VELOCITY, VELOCITY + 1, VELOCITY + 2]] = torch.tensor([2.0, 1.0, 0.0])
    params = SamplingParams(top_p=0.7)  # keeps the first two (p = .67, .24, .09)
    generator = torch.Generator().manual_seed(0)
    draws = [sample_token(logits, params, GrammarState(), generator) for _ in range(3000)]
    counts = np.bincount(np.array(draws) - VELOCITY, minlength=3)
    assert counts[2] == 0
    assert abs(counts[0] / 3000 - np.exp(1) / (np.exp(1) + 1)) < 0.03


# ---- determinism and settings -----------------------------------------------------------------


def draw_sequence(seed: int) -> list[int]:
    logits_gen = torch.Generator().manual_seed(99)  # the same logits for every seed
    generator = torch.Generator().manual_seed(seed)
    state, out = GrammarState(), []
    for _ in range(300):
        token = sample_token(
            torch.randn(VOCAB_SIZE, generator=logits_gen), SamplingParams(), state, generator
        )
        state.update(token, MODEL)
        out.append(token)
    return out


def test_seeded_sampling_is_deterministic():
    assert draw_sequence(7) == draw_sequence(7)
    assert draw_sequence(7) != draw_sequence(8)


def test_params_validation_and_preset_defaults():
    for bad in (
        {"temperature": 0},
        {"top_p": 0},
        {"top_p": 1.5},
        {"min_p": 1},
        {"top_k": -1},
        {"low_pitch": 80, "high_pitch": 60},
        {"max_polyphony": 0},
        {"max_note_seconds": 0},
        {"density": 50},
    ):
        with pytest.raises(ValueError):
            SamplingParams(**bad)
    defaults = SamplingDefaults(temperature=0.9, top_p=0.8, max_polyphony=4)
    params = SamplingParams.from_defaults(defaults, temperature=1.2, top_k=None)
    assert (params.temperature, params.top_p, params.max_polyphony, params.top_k) == (
        1.2,
        0.8,
        4,
        0,
    )
    assert params.max_note_steps == round(defaults.max_note_seconds * 100)


@pytest.mark.parametrize("graph", [False, True], ids=["cpu-sampler", "graph-sampler"])
def test_restrict_narrows_what_may_be_drawn_on_both_paths(graph: bool) -> None:
    """A caller's own rules (a jam turn's) are ANDed with the grammar's: nothing outside both
    is drawn, and both kinds of token they share still are."""
    torch.manual_seed(0)
    model = PerceiverAR(PerceiverARConfig(context=32, latents=8, dim=32, heads=2, layers=1))
    decoder = StreamingDecoder(model.eval(), device_sampling=graph)
    decoder.append([BEGIN])
    restrict = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
    restrict[NOTE_ON + 60 : NOTE_ON + 64] = True
    restrict[NOTE_OFF : NOTE_OFF + 128] = True
    restrict[TIME_SHIFT : TIME_SHIFT + 5] = True
    state, generator = GrammarState(), torch.Generator().manual_seed(1)
    params = open_params(temperature=2.0, max_polyphony=2)
    drawn = [decoder.sample(params, state, generator, restrict) for _ in range(200)]
    assert all(restrict[t] for t in drawn)
    kinds = {"on" if t < NOTE_OFF else "off" if t < TIME_SHIFT else "shift" for t in drawn}
    assert kinds == {"on", "off", "shift"}
    assert all(NOTE_OFF + 60 <= t < NOTE_OFF + 64 for t in drawn if NOTE_OFF <= t < TIME_SHIFT)


def test_no_velocity_where_no_note_on_may_follow():
    """A velocity only sets the next note-on's loudness: at the polyphony cap (or where the
    caller's rules forbid every note-on) it could only be followed by another velocity."""
    state = GrammarState()
    state.update(NOTE_ON + 60, MODEL)
    capped = allowed_mask(state, open_params(max_polyphony=1))
    assert not capped[NOTE_ON:NOTE_OFF].any() and not capped[VELOCITY:NUM_EVENTS].any()
    assert capped[NOTE_OFF + 60] and capped[TIME_SHIFT]
    assert allowed_mask(state, open_params(max_polyphony=2))[VELOCITY:NUM_EVENTS].all()
    rules = torch.ones(VOCAB_SIZE, dtype=torch.bool)
    rules[NOTE_ON:NOTE_OFF] = False
    assert not allowed_mask(GrammarState(), open_params(), rules)[VELOCITY:NUM_EVENTS].any()


def test_no_velocity_right_after_a_velocity():
    """The tokenizer never writes two velocities in a row; a model whose favourite note-ons
    were masked (a chord the rhythm plan held open) wrote velocity after velocity until the
    token cap. After a velocity only a note-on, a note-off or a time shift may come, and
    whoever wrote it, the next token clears the rule."""
    state = GrammarState()
    state.update(VELOCITY + 10, MODEL)
    after = allowed_mask(state, open_params())
    assert not after[VELOCITY:NUM_EVENTS].any()
    assert after[NOTE_ON:NOTE_OFF].any() and after[TIME_SHIFT]
    state.update(NOTE_ON + 60, PLAYER)
    assert allowed_mask(state, open_params())[VELOCITY:NUM_EVENTS].all()
    # The loop itself: logits that favour velocities stay a note-on away from one another.
    logits = torch.full((VOCAB_SIZE,), -10.0)
    logits[VELOCITY:NUM_EVENTS] = 10.0
    state, generator = GrammarState(), torch.Generator().manual_seed(0)
    drawn = []
    for _ in range(40):
        token = sample_token(logits, open_params(), state, generator)
        state.update(token, MODEL)
        drawn.append(token)
    kinds = ["vel" if t >= VELOCITY else "other" for t in drawn]
    assert "vel" in kinds and all(a != b or a != "vel" for a, b in zip(kinds, kinds[1:]))
