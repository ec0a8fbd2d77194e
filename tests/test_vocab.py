"""The token ids: layout, names and velocity bins (note_seq's performance vocabulary)."""

from __future__ import annotations

import pytest

from livegen.kernels import vocab
from livegen.kernels.vocab import (
    BEGIN,
    END,
    NOTE_OFF,
    NOTE_ON,
    NUM_EVENTS,
    PAD,
    TIME_SHIFT,
    VELOCITY,
    VOCAB_SIZE,
    bin_to_velocity,
    token_from_name,
    token_name,
    velocity_to_bin,
)


def test_layout_matches_note_seq() -> None:
    assert (NOTE_ON, NOTE_OFF, TIME_SHIFT, VELOCITY, NUM_EVENTS) == (0, 128, 256, 356, 388)
    assert (PAD, BEGIN, END, VOCAB_SIZE) == (388, 389, 390, 391)


def test_every_id_has_a_unique_name_that_reads_back() -> None:
    names = [token_name(i) for i in range(VOCAB_SIZE)]
    assert len(set(names)) == VOCAB_SIZE
    assert [token_from_name(n) for n in names] == list(range(VOCAB_SIZE))
    assert token_from_name(" note_on_60 ") == 60
    assert (token_name(256), token_name(355)) == ("TIME_SHIFT_1", "TIME_SHIFT_100")
    assert (token_name(356), token_name(387)) == ("VELOCITY_1", "VELOCITY_32")


@pytest.mark.parametrize("bad", [-1, VOCAB_SIZE, 10_000])
def test_ids_outside_the_vocabulary_have_no_name(bad: int) -> None:
    with pytest.raises(ValueError):
        token_name(bad)


@pytest.mark.parametrize(
    "bad",
    ["NOTE_ON_128", "TIME_SHIFT_0", "TIME_SHIFT_101", "VELOCITY_33", "CHORD_1", "NOTE_ON_x", ""],
)
def test_bad_names_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        token_from_name(bad)


def test_velocity_bins() -> None:
    bins = [velocity_to_bin(v) for v in range(1, 128)]
    assert bins[0] == 1 and bins[-1] == 32 and sorted(set(bins)) == list(range(1, 33))
    # note_seq: bin size ceil(127 / 32) = 4; a bin decodes to its lowest velocity.
    assert [velocity_to_bin(v) for v in (1, 4, 5, 124, 125, 127)] == [1, 1, 2, 31, 32, 32]
    assert all(velocity_to_bin(bin_to_velocity(b)) == b for b in range(1, 33))
    assert bin_to_velocity(32) == 125 and vocab.VELOCITY_BIN_SIZE == 4
