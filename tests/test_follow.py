"""Following the player: controls taken from the prompt (models/follow.py), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from livegen.kernels.tokenizer import Notes, encode_notes
from livegen.kernels.vocab import NOTE_OFF, NOTE_ON
from livegen.models.follow import Follower, FollowSettings
from livegen.models.grammar import GrammarState
from livegen.models.preset import SamplingDefaults
from livegen.models.sampling import SamplingParams


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
