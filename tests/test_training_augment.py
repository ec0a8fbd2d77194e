"""Augmentation on token windows and the sampler's seeded, resumable data order."""

from __future__ import annotations

import numpy as np
import pytest

from livegen.kernels.tokenizer import decode_tokens, encode_notes
from livegen.kernels.vocab import BEGIN, END, NUM_EVENTS, PAD
from livegen.training.augment import AugmentConfig, WindowChange, augment_notes, augment_tokens
from livegen.training.data import DataOptions, build_data
from livegen.training.sampler import WindowSampler
from livegen.training.shards import TokenShards
from tests.training_fixtures import melody, midi_folder

QUIET = dict(timing_jitter=0.0, velocity_offset=0, velocity_jitter=0.0)


def only(**changes) -> AugmentConfig:
    return AugmentConfig(**{**dict(transpose=0, stretch=0.0, **QUIET), **changes})


def test_transpose_shifts_pitches_and_drops_notes_pushed_off_the_keyboard():
    notes = melody(1)
    notes.pitch[:3] = [125, 126, 127]
    change = WindowChange(transpose=2, stretch=1.0, velocity_offset=0)
    out = augment_notes(notes, change, np.random.default_rng(0), only())
    assert len(out) == len(notes) - 2  # 126 + 2 and 127 + 2 are off the keyboard
    assert out.pitch.max() == 127
    np.testing.assert_array_equal(np.sort(out.pitch), np.sort(notes.pitch[notes.pitch <= 125] + 2))


def test_stretch_scales_time_and_jitter_keeps_notes_at_least_a_step_long():
    notes = melody(2)
    change = WindowChange(transpose=0, stretch=1.05, velocity_offset=0)
    out = augment_notes(notes, change, np.random.default_rng(0), only())
    np.testing.assert_allclose(out.start, notes.start * 1.05)
    jittered = augment_notes(notes, change, np.random.default_rng(0), only(timing_jitter=0.05))
    assert (jittered.end - jittered.start >= 0.01 - 1e-9).all() and (jittered.start >= 0).all()


def test_velocity_changes_stay_in_midi_range():
    notes = melody(3)
    change = WindowChange(transpose=0, stretch=1.0, velocity_offset=120)
    out = augment_notes(notes, change, np.random.default_rng(0), only(velocity_jitter=30.0))
    assert out.velocity.min() >= 1 and out.velocity.max() == 127


def test_augmented_windows_are_valid_token_sequences_and_keep_piece_boundaries():
    a, b = encode_notes(melody(4)), encode_notes(melody(5))
    window = np.concatenate((a[10:], [END, BEGIN], b)).astype(np.int64)
    out = augment_tokens(window, np.random.default_rng(7), AugmentConfig())
    specials = out[out >= NUM_EVENTS]
    assert specials.tolist() == [END, BEGIN]
    assert out.min() >= 0 and out.max() < NUM_EVENTS + 3 and PAD not in out
    # Each side re-encodes to itself: the output is what the tokenizer itself would write.
    cut = int(np.flatnonzero(out == END)[0])
    for part in (out[:cut], out[cut + 2 :]):
        np.testing.assert_array_equal(encode_notes(decode_tokens(part)), part)
    again = augment_tokens(window, np.random.default_rng(7), AugmentConfig())
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(
        out, augment_tokens(window, np.random.default_rng(8), AugmentConfig())
    )


def test_disabled_augmentation_returns_the_window_unchanged():
    window = encode_notes(melody(6)).astype(np.int64)
    out = augment_tokens(window, np.random.default_rng(0), AugmentConfig(enabled=False))
    np.testing.assert_array_equal(out, window)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampler")
    build_data([midi_folder(root, pieces=6)], root / "d", DataOptions(progress=False))
    return TokenShards(root / "d", "train")


def test_sampler_epochs_cover_disjoint_windows_and_resume_from_two_numbers(shards):
    sampler = WindowSampler(shards, 33, seed=3)
    epoch0 = sampler.windows(0)
    starts = np.sort(epoch0[:, 1])
    assert (np.diff(starts) == 33).all()  # non-overlapping crops
    assert not np.array_equal(sampler.windows(1), epoch0)  # a new offset and order
    first = sampler.take(len(epoch0) + 5)  # runs into epoch 1
    assert first[-1].epoch == 1 and sampler.state.position == 5

    fresh = WindowSampler(shards, 33, seed=3, augment=AugmentConfig())
    fresh.take(7)
    saved = (fresh.state.epoch, fresh.state.position)
    expected = [fresh.tokens(s) for s in fresh.take(4)]
    resumed = WindowSampler(shards, 33, seed=3, augment=AugmentConfig())
    resumed.state.epoch, resumed.state.position = saved
    for tokens, sample in zip(expected, resumed.take(4)):
        np.testing.assert_array_equal(resumed.tokens(sample), tokens)
        assert tokens.shape == (33,)
