"""The live encoder emits, step by step, exactly what the offline encoder emits."""

from __future__ import annotations

import math

import mido
from hypothesis import given
from hypothesis import strategies as st

from livegen.kernels.live_encoder import LiveEncoder, encode_messages, quantize
from livegen.kernels.tokenizer import encode_performance
from livegen.kernels.vocab import TIME_SHIFT, VELOCITY, token_name

TICK = 0.0025  # hits half-steps exactly and makes equal times common
times = st.integers(0, 300).map(lambda k: k * TICK)


def on(pitch: int, velocity: int = 80, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)


def off(pitch: int, channel: int = 0, as_note_on: bool = False) -> mido.Message:
    if as_note_on:
        return mido.Message("note_on", note=pitch, velocity=0, channel=channel)
    return mido.Message("note_off", note=pitch, channel=channel)


def pedal(value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", control=64, value=value, channel=channel)


@st.composite
def sessions(draw) -> list[tuple[str, object, float]]:
    """Actions ("feed", message, time) / ("advance", None, time) in arrival order."""
    silence = draw(st.sampled_from([0.0, 1.5, 4.0]))
    timed: list[tuple[float, mido.Message]] = []
    for _ in range(draw(st.integers(0, 25))):
        channel = draw(st.sampled_from([0, 0, 0, 1, 9]))
        pitch = draw(st.one_of(st.integers(0, 127), st.sampled_from([60, 60, 62])))
        start = draw(times) + (silence if draw(st.booleans()) else 0.0)
        timed.append((start, on(pitch, draw(st.integers(1, 127)), channel)))
        if draw(st.integers(0, 9)) > 0:  # now and then a key is never released
            end = start + draw(st.one_of(st.just(0.0), times))
            timed.append((end, off(pitch, channel, as_note_on=draw(st.booleans()))))
    for _ in range(draw(st.integers(0, 6))):
        value = draw(st.sampled_from([0, 30, 64, 127]))
        timed.append((draw(times), pedal(value, draw(st.sampled_from([0, 1])))))
    if draw(st.booleans()):  # messages the encoding ignores
        timed.append((draw(times), mido.Message("pitchwheel", pitch=100)))
        timed.append((draw(times), mido.Message("control_change", control=1, value=5)))
    timed.append((draw(times), off(50)))  # a note-off with nothing to close
    # Arrival order: by time plus jitter, so some messages arrive late (out of order).
    jitter = draw(st.sampled_from([0.0, 0.0, 0.012, 0.05]))
    keyed = [(t + draw(st.floats(-jitter, jitter)), i, t, m) for i, (t, m) in enumerate(timed)]
    actions = [("feed", m, t) for _, _, t, m in sorted(keyed, key=lambda x: x[:2])]
    # Clock ticks with no message, at random times.
    for _ in range(draw(st.integers(0, 8))):
        actions.insert(draw(st.integers(0, len(actions))), ("advance", None, draw(times)))
    return actions


def clamped_stream(actions) -> tuple[list[tuple[mido.Message, float]], list[int], float]:
    """The encoder's rules spelled out: the stream with effective (clamped) times, the last
    final step after each action, and the clock at the end."""
    clock, final = -math.inf, -1
    stream: list[tuple[mido.Message, float]] = []
    finals = []
    for kind, message, time in actions:
        if kind == "feed" and message.type in ("note_on", "note_off", "control_change"):
            if quantize(time) <= final:
                time = (final + 1) / 100
            stream.append((message, time))
        clock = max(clock, time)
        final = max(final, quantize(clock) - 1)
        finals.append(final)
    return stream, finals, clock


def with_releases(stream: list[tuple[mido.Message, float]], clock: float):
    """The stream plus what flush() means: at the clock, pedal up on every channel that
    used it, and a note-off per strike of every key (surplus note-offs do nothing)."""
    channels = sorted({m.channel for m, _ in stream if m.type == "control_change"})
    strikes = [m for m, _ in stream if m.type == "note_on" and m.velocity > 0]
    releases = [pedal(0, c) for c in channels] + [off(m.note, m.channel) for m in strikes]
    return stream + [(m, clock) for m in releases]


def prefix_through_step(tokens: list[int], last_step: int) -> list[int]:
    """The offline tokens of every event at or before ``last_step`` (no trailing shifts)."""
    step, keep = 0, 0
    for index, token in enumerate(tokens):
        if TIME_SHIFT <= token < VELOCITY:
            step += token - TIME_SHIFT + 1
        elif step > last_step:
            break
        elif token < TIME_SHIFT:
            keep = index + 1
    return tokens[:keep]


@given(sessions())
def test_streaming_equals_offline_step_by_step(actions) -> None:
    encoder = LiveEncoder()
    stream, finals, clock = clamped_stream(actions)
    full = encode_messages(with_releases(stream, clock)).tolist()
    emitted: list[int] = []
    for (kind, message, time), final in zip(actions, finals):
        if kind == "feed":
            emitted += encoder.feed(message, time)
        else:
            emitted += encoder.advance(time)
        # Everything final is out, and nothing that is not: one step of latency.
        assert encoder.final_step == final
        assert emitted == prefix_through_step(full, final)
    emitted += encoder.flush()
    assert emitted == full


@given(sessions())
def test_the_jams_key_changes_encode_as_their_messages_do(actions) -> None:
    """feed_event (the jam's path: no mido message) gives the tokens feed gives."""
    from livegen.kernels.live_encoder import classify

    by_message, by_event = LiveEncoder(), LiveEncoder()
    for kind, message, time in actions:
        if kind != "feed":
            assert by_message.advance(time) == by_event.advance(time)
            continue
        classified = classify(message)
        expected = by_message.feed(message, time)
        got = by_event.feed_event(*classified, time) if classified else by_event.advance(time)
        assert got == expected
    assert by_message.flush() == by_event.flush()


def spelled(tokens) -> str:
    return " ".join(token_name(t) for t in tokens)


def test_a_step_is_final_half_a_step_later() -> None:
    encoder = LiveEncoder()
    assert encoder.feed(on(60, 100), 0.101) == []  # step 10, not final yet
    assert encoder.advance(0.1049) == []
    assert spelled(encoder.advance(0.105)) == "TIME_SHIFT_10 VELOCITY_25 NOTE_ON_60"
    assert encoder.feed(off(60), 0.2) == []
    assert spelled(encoder.advance(0.3)) == "TIME_SHIFT_10 NOTE_OFF_60"
    assert encoder.flush() == []


def test_pedal_holds_the_note_until_release() -> None:
    encoder = LiveEncoder()
    out = encoder.feed(pedal(127), 0.0)
    out += encoder.feed(on(60), 0.0)
    out += encoder.feed(off(60), 0.5)
    out += encoder.advance(1.0)
    assert spelled(out) == "VELOCITY_20 NOTE_ON_60"  # the note-off is held back
    out += encoder.feed(pedal(0), 1.2)
    out += encoder.advance(1.3)
    assert spelled(out) == "VELOCITY_20 NOTE_ON_60 TIME_SHIFT_100 TIME_SHIFT_20 NOTE_OFF_60"


def test_restrike_at_the_same_time_under_pedal_keeps_one_note() -> None:
    encoder = LiveEncoder()
    out = encoder.feed(pedal(100), 0.0)
    out += encoder.feed(on(60, 20), 0.3)
    out += encoder.feed(on(60, 120), 0.3)
    out += encoder.advance(0.4)
    out += encoder.flush()  # releases the pedal at 0.4 s
    assert spelled(out) == "TIME_SHIFT_30 VELOCITY_30 NOTE_ON_60 TIME_SHIFT_10 NOTE_OFF_60"


def test_late_message_is_clamped_and_counted() -> None:
    encoder = LiveEncoder()
    encoder.feed(on(60), 0.5)
    encoder.advance(0.6)  # steps up to 59 are final
    out = encoder.feed(off(60), 0.3)  # arrives late: moved to step 60
    out += encoder.advance(0.7)
    assert encoder.stats.clamped == 1
    assert spelled(out) == "TIME_SHIFT_10 NOTE_OFF_60"


def test_out_of_order_within_the_open_step_is_reordered() -> None:
    encoder = LiveEncoder()
    out = encoder.feed(on(64), 0.004)
    out += encoder.feed(on(60, 40), 0.001)  # earlier, same step: it comes first
    out += encoder.flush()
    assert spelled(out) == (
        "VELOCITY_10 NOTE_ON_60 VELOCITY_20 NOTE_ON_64 TIME_SHIFT_1 NOTE_OFF_60 NOTE_OFF_64"
    )


def test_ignored_messages_are_counted_and_drums_left_out() -> None:
    encoder = LiveEncoder()
    encoder.feed(mido.Message("program_change", program=3), 0.0)
    encoder.feed(on(36, channel=9), 0.0)
    encoder.feed(off(70), 0.0)
    assert encoder.flush() == []
    assert encoder.stats.ignored == 2 and encoder.stats.orphan_offs == 1
    drums = LiveEncoder(include_drums=True)
    drums.feed(on(36, channel=9), 0.0)
    assert spelled(drums.flush()) == "VELOCITY_20 NOTE_ON_36 TIME_SHIFT_1 NOTE_OFF_36"


def test_flush_starts_a_new_performance() -> None:
    encoder = LiveEncoder()
    encoder.feed(on(60), 5.0)
    encoder.flush()
    out = encoder.feed(on(62), 0.0)
    out += encoder.feed(off(62), 0.1)
    out += encoder.flush()
    assert spelled(out) == "VELOCITY_20 NOTE_ON_62 TIME_SHIFT_10 NOTE_OFF_62"


def test_memory_stays_bounded_over_a_long_session() -> None:
    encoder = LiveEncoder()
    produced = 0
    for k in range(3000):  # 30 minutes of a note every 0.6 s, with pedal strokes
        t = k * 0.6
        produced += len(encoder.feed(pedal(127 if k % 4 == 0 else 0 if k % 4 == 2 else 64), t))
        produced += len(encoder.feed(on(40 + k % 40), t))
        produced += len(encoder.feed(off(40 + k % 40), t + 0.3))
        assert encoder.pending <= 2
        assert encoder.scheduled_offsets <= 64
        assert encoder.tracked_notes <= 64
        assert encoder.open_keys <= 2
    assert produced > 3 * 3000


def test_encode_messages_matches_read_midi_of_the_same_stream(tmp_path) -> None:
    # The same performance as a MIDI file: both paths give the same tokens.
    stream = [(on(60, 90), 0.0), (on(60, 50), 0.25), (off(60), 0.5), (pedal(127), 0.6)]
    stream += [(on(64), 0.7), (off(60), 0.8), (off(64), 0.9), (pedal(0), 1.5)]
    midi = mido.MidiFile(ticks_per_beat=1000)  # 120 bpm: 2000 ticks a second
    track = mido.MidiTrack()
    midi.tracks.append(track)
    now = 0
    for message, time in stream:
        tick = round(time * 2000)
        track.append(message.copy(time=tick - now))
        now = tick
    path = tmp_path / "stream.mid"
    midi.save(path)
    from livegen.kernels.tokenizer import read_midi

    assert encode_messages(stream).tolist() == encode_performance(read_midi(path)).tolist()


def test_flush_releases_pedal_and_keys_at_the_clock() -> None:
    encoder = LiveEncoder()
    out = encoder.feed(pedal(127), 0.0)
    out += encoder.feed(on(60), 0.0)
    out += encoder.feed(off(60), 0.2)  # held by the pedal
    out += encoder.feed(on(67), 0.5)  # never released
    out += encoder.advance(3.0)
    out += encoder.flush()
    assert spelled(out) == (
        "VELOCITY_20 NOTE_ON_60 TIME_SHIFT_50 NOTE_ON_67 "
        "TIME_SHIFT_100 TIME_SHIFT_100 TIME_SHIFT_50 NOTE_OFF_60 NOTE_OFF_67"
    )
    assert encoder.stats.orphan_offs == 0
