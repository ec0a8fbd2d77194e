"""The offline encoding: numba kernels against the note_seq oracle, sustain rules, round trips."""

from __future__ import annotations

import mido
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from livegen.kernels.time_steps import TempoMap, seconds_to_step
from livegen.kernels.tokenizer import (
    Notes,
    Performance,
    decode_tokens,
    encode_file,
    encode_notes,
    encode_performance,
    read_midi,
    sustained_notes,
    tokens_to_midi,
    write_midi,
)
from livegen.kernels.vocab import (
    BEGIN,
    END,
    NOTE_OFF,
    NOTE_ON,
    PAD,
    TIME_SHIFT,
    VELOCITY,
    token_from_name,
    token_name,
)
from tests.notes_reference import RefNote, exact_step, is_tie, note_seq_step
from tests.notes_reference import encode as reference_encode

# ---------------------------------------------------------------- strategies

# Times on a 2.5 ms grid hit quantisation half-steps exactly (x.xx5 s) and make exact ties
# between onsets, offsets and pedal events common.
TICK = 0.0025
times = st.integers(0, 400).map(lambda k: k * TICK)
pitches = st.one_of(st.integers(0, 127), st.sampled_from([60, 60, 61, 62]))


@st.composite
def performances(draw, max_notes: int = 30, groups: int = 3) -> Performance:
    count = draw(st.integers(0, max_notes))
    silence = draw(st.sampled_from([0.0, 0.0, 1.37, 3.0]))  # long gaps need several shifts
    rows = []
    for _ in range(count):
        start = draw(times) + (silence if draw(st.booleans()) else 0.0)
        duration = draw(st.one_of(st.just(0.0), times, st.just(TICK)))
        rows.append(
            (
                start,
                start + duration,
                draw(pitches),
                draw(st.integers(1, 127)),
                draw(st.integers(0, groups - 1)),
            )
        )
    pedals = sorted(
        draw(
            st.lists(
                st.tuples(times, st.integers(0, groups - 1), st.sampled_from([0, 63, 64, 127])),
                max_size=8,
            )
        ),
        key=lambda p: p[0],
    )
    notes = Notes(*(np.array([r[k] for r in rows]) for k in range(5))).sorted()
    return Performance(
        notes,
        np.array([p[0] for p in pedals]),
        np.array([p[1] for p in pedals], dtype=np.int64),
        np.array([p[2] for p in pedals], dtype=np.int64),
    )


def reference_tokens(perf: Performance, quantize=exact_step) -> list[int]:
    """The oracle's tokens: note_seq's algorithm with livegen's rounding (exact ties up) by
    default, or note_seq's own float rounding (quantize=note_seq_step)."""
    notes = perf.notes
    refs = [
        RefNote(
            float(notes.start[i]),
            float(notes.end[i]),
            int(notes.pitch[i]),
            int(notes.velocity[i]),
            int(notes.channel[i]),
        )
        for i in range(len(notes))
    ]
    pedals = [
        (float(t), int(g), int(v))
        for t, g, v in zip(perf.pedal_time, perf.pedal_channel, perf.pedal_value)
    ]
    return reference_encode(refs, pedals, quantize)


def all_times(perf: Performance) -> list[float]:
    notes = perf.notes
    return [*notes.start.tolist(), *notes.end.tolist(), *perf.pedal_time.tolist()]


def names(tokens) -> list[str]:
    return [token_name(int(t)) for t in tokens]


def spelled(tokens) -> str:
    return " ".join(names(tokens))


def tokens_of(text: str) -> list[int]:
    return [token_from_name(name) for name in text.split()]


def perf_of(notes: list[tuple], pedals: list[tuple] = ()) -> Performance:
    """notes: (start, end, pitch, velocity, channel); pedals: (time, channel, value)."""
    columns = [np.array([n[k] for n in notes]) for k in range(5)] if notes else [[]] * 5
    return Performance(
        Notes(*columns).sorted(),
        [p[0] for p in pedals],
        [p[1] for p in pedals],
        [p[2] for p in pedals],
    )


# ---------------------------------------------------------------- kernel == note_seq oracle


@given(performances())
def test_kernel_matches_note_seq_reference(perf: Performance) -> None:
    assert encode_performance(perf).tolist() == reference_tokens(perf)


@given(performances(max_notes=60, groups=1))
def test_kernel_matches_reference_dense_single_channel(perf: Performance) -> None:
    assert encode_performance(perf).tolist() == reference_tokens(perf)


@given(performances())
def test_only_exact_ties_differ_from_note_seq_rounding(perf: Performance) -> None:
    # note_seq rounds float seconds; where no time lies exactly on a half step, livegen's
    # tokens are note_seq's, token for token.
    if not any(is_tie(t) for t in all_times(perf)):
        assert encode_performance(perf).tolist() == reference_tokens(perf, note_seq_step)


def test_a_float_tie_that_note_seq_rounds_down_rounds_up() -> None:
    # 0.285 s is 28.499999999999996 steps in float64: note_seq's rule gives 28.
    assert note_seq_step(0.285) == 28 and seconds_to_step(0.285) == 29
    perf = perf_of([(0.285, 0.5, 60, 80, 0)])
    assert names(encode_performance(perf))[0] == "TIME_SHIFT_29"
    assert reference_tokens(perf, note_seq_step) != encode_performance(perf).tolist()


def test_encoding_of_a_small_phrase_by_hand() -> None:
    perf = perf_of([(0.0, 0.5, 60, 80, 0), (0.004, 0.5, 64, 80, 0), (1.7, 1.701, 67, 100, 0)])
    assert spelled(encode_performance(perf)) == (
        "VELOCITY_20 NOTE_ON_60 NOTE_ON_64 TIME_SHIFT_50 NOTE_OFF_60 NOTE_OFF_64 "
        "TIME_SHIFT_100 TIME_SHIFT_20 VELOCITY_25 NOTE_ON_67 TIME_SHIFT_1 NOTE_OFF_67"
    )


def test_onsets_in_one_step_keep_their_unquantised_order() -> None:
    # 64 is struck 3 ms before 60: same step, and 64 comes first (note_seq sorts by time).
    perf = perf_of([(0.003, 0.2, 60, 40, 0), (0.0, 0.2, 64, 90, 0)])
    assert spelled(encode_performance(perf)) == (
        "VELOCITY_23 NOTE_ON_64 VELOCITY_10 NOTE_ON_60 TIME_SHIFT_20 NOTE_OFF_64 NOTE_OFF_60"
    )


def test_quantisation_rounds_half_up_and_notes_last_a_step() -> None:
    # 0.005 s is exactly half a step: it rounds up to step 1; a zero-length note lasts 1 step.
    perf = perf_of([(0.005, 0.005, 60, 1, 0)])
    assert spelled(encode_performance(perf)) == (
        "TIME_SHIFT_1 VELOCITY_1 NOTE_ON_60 TIME_SHIFT_1 NOTE_OFF_60"
    )


# ---------------------------------------------------------------- sustain rules by hand


def ends(perf: Performance) -> list[tuple[int, float]]:
    notes = sustained_notes(perf)
    return [(int(p), round(float(e), 6)) for p, e in zip(notes.pitch, notes.end)]


def test_pedal_extends_a_released_note_to_the_pedal_release() -> None:
    perf = perf_of([(0.0, 0.5, 60, 80, 0)], [(0.2, 0, 127), (2.0, 0, 0)])
    assert ends(perf) == [(60, 2.0)]


def test_note_released_after_the_pedal_keeps_its_own_end() -> None:
    perf = perf_of([(0.0, 3.0, 60, 80, 0)], [(0.2, 0, 127), (2.0, 0, 0)])
    assert ends(perf) == [(60, 3.0)]


def test_restrike_under_pedal_shortens_the_earlier_note() -> None:
    perf = perf_of([(0.0, 0.1, 60, 80, 0), (1.0, 1.1, 60, 70, 0)], [(0.0, 0, 127), (3.0, 0, 0)])
    assert ends(perf) == [(60, 1.0), (60, 3.0)]
    assert spelled(encode_performance(perf)) == (
        "VELOCITY_20 NOTE_ON_60 TIME_SHIFT_100 NOTE_OFF_60 VELOCITY_18 NOTE_ON_60 "
        "TIME_SHIFT_100 TIME_SHIFT_100 NOTE_OFF_60"
    )


def test_restrike_at_the_identical_time_deletes_the_earlier_note() -> None:
    perf = perf_of([(0.5, 0.6, 60, 100, 0), (0.5, 0.9, 60, 20, 0)], [(0.0, 0, 127), (1.0, 0, 0)])
    notes = sustained_notes(perf)
    assert len(notes) == 1 and int(notes.velocity[0]) == 20  # the later one in list order
    assert encode_performance(perf).tolist() == reference_tokens(perf)


def test_pedal_acts_on_its_own_channel_only() -> None:
    perf = perf_of(
        [(0.0, 0.5, 60, 80, 0), (0.0, 0.5, 62, 80, 1)],
        [(0.1, 1, 127), (2.0, 1, 0)],
    )
    assert ends(perf) == [(60, 0.5), (62, 2.0)]


def test_notes_still_held_at_the_end_close_at_the_last_event() -> None:
    # The pedal is never released: the note ends at the last event (the CC at 4.0 s).
    perf = perf_of([(0.0, 0.5, 60, 80, 0), (1.0, 1.5, 64, 80, 0)], [(0.1, 0, 127), (4.0, 0, 100)])
    assert ends(perf) == [(60, 4.0), (64, 4.0)]


def test_pedal_down_at_the_same_time_as_the_note_off_holds_it() -> None:
    # At equal times pedal events come before note events.
    perf = perf_of([(0.0, 1.0, 60, 80, 0), (0.2, 1.5, 64, 80, 0)], [(1.0, 0, 127), (2.0, 0, 0)])
    assert ends(perf) == [(60, 2.0), (64, 2.0)]


# ---------------------------------------------------------------- decoding


def test_decoding_rules() -> None:
    tokens = tokens_of(
        "NOTE_OFF_50 NOTE_ON_60 TIME_SHIFT_10 VELOCITY_32 NOTE_ON_60 TIME_SHIFT_5 NOTE_OFF_60 "
        "TIME_SHIFT_5 NOTE_ON_70 NOTE_OFF_70 TIME_SHIFT_20"
    )
    notes = decode_tokens([BEGIN, *tokens, 9999, -3, PAD, END])
    rows = [
        (round(float(s), 4), round(float(e), 4), int(p), int(v))
        for s, e, p, v in zip(notes.start, notes.end, notes.pitch, notes.velocity)
    ]
    assert rows == [
        (0.0, 0.15, 60, 64),  # default velocity; the first NOTE_OFF_60 closes the oldest
        (0.1, 0.4, 60, 125),  # left open: ends at the final time
        (0.2, 0.21, 70, 125),  # on and off in one step: lasts one step
    ]


@given(st.lists(st.integers(-1000, 1000), max_size=300))
def test_decoder_never_raises_on_any_ids(tokens: list[int]) -> None:
    notes = decode_tokens(tokens)
    assert np.all(notes.end > notes.start)
    assert np.all((notes.pitch >= 0) & (notes.pitch <= 127))
    assert np.all((notes.velocity >= 1) & (notes.velocity <= 127))


def test_decoder_accepts_numpy_arrays_of_any_integer_dtype() -> None:
    tokens = np.array([VELOCITY + 3, NOTE_ON + 60, TIME_SHIFT + 9, NOTE_OFF + 60])
    for dtype in (np.int16, np.int32, np.uint16, np.uint64, np.int64):
        assert len(decode_tokens(tokens.astype(dtype))) == 1
    assert len(decode_tokens(np.array([2**63 - 1, -(2**63)]))) == 0


@st.composite
def fifo_performances(draw) -> Performance:
    """One channel, same-pitch notes ending in the order they start (as MIDI pairing gives)."""
    rows = []
    for pitch in draw(st.lists(pitches, max_size=6, unique=True)):
        starts = sorted(draw(st.lists(times, min_size=1, max_size=5)))
        offs = sorted(s + draw(st.one_of(st.just(0.0), times)) for s in starts)
        rows += [(s, e, pitch, draw(st.integers(1, 127)), 0) for s, e in zip(starts, offs)]
    pedals = sorted(draw(st.lists(st.tuples(times, st.just(0), st.sampled_from([0, 127])))))
    return perf_of(rows, pedals)


@given(fifo_performances())
def test_tokens_notes_tokens_round_trip(perf: Performance) -> None:
    tokens = encode_performance(perf)
    assert encode_notes(decode_tokens(tokens)).tolist() == tokens.tolist()


@given(fifo_performances())
def test_tokens_midi_file_tokens_round_trip(tmp_path_factory, perf: Performance) -> None:
    path = tmp_path_factory.mktemp("rt") / "x.mid"
    tokens = encode_performance(perf)
    tokens_to_midi(tokens, path)
    assert encode_file(path).tolist() == tokens.tolist()


# ---------------------------------------------------------------- MIDI files


def test_read_midi_pairs_note_offs_first_in_first_out(tmp_path) -> None:
    midi = mido.MidiFile(ticks_per_beat=480)  # 120 bpm: 960 ticks a second
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for kind, note, velocity, delta in [
        ("note_on", 60, 100, 0),
        ("note_on", 60, 50, 480),  # 0.5 s
        ("note_off", 60, 0, 480),  # 1.0 s: closes the first (oldest) note
        ("note_on", 60, 0, 480),  # 1.5 s: velocity 0 is a note-off
        ("note_on", 36, 90, 0),
    ]:
        track.append(mido.Message(kind, note=note, velocity=velocity, channel=0, time=delta))
    track.append(mido.Message("note_off", note=36, channel=0, time=10))
    track.append(mido.Message("note_on", note=40, velocity=90, channel=9, time=0))
    track.append(mido.Message("note_on", note=72, velocity=90, channel=1, time=0))  # never closed
    track.append(mido.Message("note_off", note=40, channel=9, time=480))
    path = tmp_path / "fifo.mid"
    midi.save(path)
    notes = read_midi(path).notes
    assert [
        (float(s), float(e), int(v)) for s, e, v in zip(notes.start, notes.end, notes.velocity)
    ] == [
        (0.0, 1.0, 100),
        (0.5, 1.5, 50),
        (1.5, 1.5 + 10 / 960, 90),
    ]
    # Drums are left out unless asked for; a note never closed is dropped (as symusic does).
    assert len(read_midi(path, include_drums=True).notes) == 4


def test_tempo_map_steps_are_exact_and_ties_round_up() -> None:
    # 96 ticks a quarter at 0.5 s, then at tick 96 a tempo of 0.3 s a quarter: tick 96 + 5
    # is 0.5 + 5 * 0.003125 = 0.515625 s, not a tie; tick 96 + 8 is 0.525 s, a tie -> step 53.
    tempo = TempoMap(96, [0, 96], [500_000, 300_000])
    units = tempo.units(np.array([0, 96, 101, 104, 192]))
    assert tempo.steps_of_units(units).tolist() == [0, 50, 52, 53, 80]
    assert tempo.seconds_of_units(units).tolist() == [0.0, 0.5, 0.515625, 0.525, 0.8]


def test_a_tie_in_a_midi_file_with_a_tempo_change_rounds_up(tmp_path) -> None:
    # 480 ticks a quarter at 1 s a quarter; from tick 480 (1 s), 0.7 s a quarter. 24 ticks
    # later is 1 + 24 * 0.7 / 480 = 1.035 s exactly: 103.5 steps, a tie. Float seconds make
    # it 103.49999999999999 steps, which note_seq's rule rounds down.
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))
    track.append(mido.Message("note_on", note=60, velocity=64, time=0))
    track.append(mido.Message("note_off", note=60, time=480))  # 1.0 s: step 100
    track.append(mido.MetaMessage("set_tempo", tempo=700_000, time=0))
    track.append(mido.Message("note_on", note=62, velocity=64, time=24))  # 1.035 s: a tie
    track.append(mido.Message("note_off", note=62, time=216))  # 1.35 s
    path = tmp_path / "tie.mid"
    midi.save(path)
    perf = read_midi(path)
    start = float(perf.notes.start[1])
    assert is_tie(start) and note_seq_step(start) == 103
    tokens = encode_performance(perf)
    assert names(tokens)[3:6] == ["NOTE_OFF_60", "TIME_SHIFT_4", "NOTE_ON_62"]  # step 104
    assert tokens.tolist() == reference_tokens(perf)
    # note_seq's float rounding differs there, and only there.
    floats = reference_tokens(perf, note_seq_step)
    assert [token_name(t) for t in floats][3:6] == ["NOTE_OFF_60", "TIME_SHIFT_3", "NOTE_ON_62"]
    assert len(floats) == len(tokens) and sum(a != b for a, b in zip(floats, tokens)) == 2


def test_read_midi_follows_tempo_changes_and_pedal(tmp_path) -> None:
    midi = mido.MidiFile(ticks_per_beat=100)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=0))  # 1 s a beat
    track.append(mido.Message("note_on", note=60, velocity=64, time=0))
    track.append(mido.Message("control_change", control=64, value=127, time=50))
    track.append(mido.Message("note_off", note=60, time=50))  # 1.0 s
    track.append(mido.MetaMessage("set_tempo", tempo=250_000, time=0))  # 0.25 s a beat
    track.append(mido.Message("control_change", control=64, value=0, time=200))  # 1.5 s
    path = tmp_path / "tempo.mid"
    midi.save(path)
    perf = read_midi(path)
    assert perf.notes.end.tolist() == [1.0]
    assert perf.pedal_time.tolist() == [0.5, 1.5] and perf.pedal_value.tolist() == [127, 0]
    assert names(encode_performance(perf)) == [
        "VELOCITY_16",
        "NOTE_ON_60",
        "TIME_SHIFT_100",
        "TIME_SHIFT_50",
        "NOTE_OFF_60",
    ]


def test_write_midi_tracks_channels_and_programs(tmp_path) -> None:
    player = Notes([0.0, 0.5], [0.4, 1.0], [60, 62], [90, 80], [0, 0])
    model = Notes([0.25], [0.75], [67], [70], [0])
    path = tmp_path / "session.mid"
    write_midi(path, [("player", player), ("model", model)], programs=[0, 40])
    midi = mido.MidiFile(path)
    assert [t.name for t in midi.tracks] == ["player", "model"]
    channels = [{m.channel for m in t if m.type == "note_on"} for t in midi.tracks]
    assert channels == [{0}, {1}]
    programs = [[m.program for m in t if m.type == "program_change"] for t in midi.tracks]
    assert programs == [[0], [40]]
    back = read_midi(path).notes
    assert back.pitch.tolist() == [60, 67, 62]
    assert np.allclose(back.start, [0.0, 0.25, 0.5]) and np.allclose(back.end, [0.4, 0.75, 1.0])


def test_restruck_note_written_then_read_keeps_both_notes(tmp_path) -> None:
    notes = Notes([0.0, 0.5], [0.5, 1.0], [60, 60], [90, 30], [0, 0])
    path = tmp_path / "restrike.mid"
    write_midi(path, [("x", notes)])
    back = read_midi(path).notes
    assert back.end.tolist() == [0.5, 1.0] and back.velocity.tolist() == [90, 30]


@pytest.fixture(scope="module")
def chorale_midi(tmp_path_factory):
    music21 = pytest.importorskip("music21")
    path = tmp_path_factory.mktemp("m21") / "bwv66.6.mid"
    music21.corpus.parse("bach/bwv66.6").write("midi", fp=str(path))
    return path


def test_real_piece_encodes_and_round_trips_through_a_file(chorale_midi, tmp_path) -> None:
    tokens = encode_file(chorale_midi)
    assert len(tokens) > 200
    assert tokens.dtype == np.int16 and tokens.min() >= 0 and tokens.max() < VELOCITY + 32
    # Four voices, each note has one on and one off.
    n_on = int(np.sum(tokens < NOTE_OFF))
    assert n_on == int(np.sum((tokens >= NOTE_OFF) & (tokens < TIME_SHIFT))) > 100
    perf = read_midi(chorale_midi)
    assert encode_performance(perf).tolist() == reference_tokens(perf)
    out = tmp_path / "again.mid"
    tokens_to_midi(tokens, out)
    assert encode_file(out).tolist() == tokens.tolist()
