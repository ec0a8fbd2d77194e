"""MIDI files <-> notes <-> token ids: the public face of the performance encoding.

read_midi parses with symusic (in ticks) and keeps each time exact: an integer of the file's
TempoMap (kernels/time_steps.py), so the sustain walk compares ticks and a note on a half step
rounds up, always (float seconds, symusic's float32 or even float64, sometimes round such a
tie down). encode_performance runs the numba kernels of livegen.kernels.performance on those
exact times when a file gave them, on float seconds otherwise; decode_tokens and write_midi go
back.
docs/TOKENS.md states the rules and where livegen differs from Magenta's note_seq.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livegen.kernels import performance as kernels
from livegen.kernels.errors import MidiFileError
from livegen.kernels.midi_codes import (
    CHANNELS,
    DATA_MASK,
    DEFAULT_TEMPO,
    DRUM_CHANNEL,
    SUSTAIN_CC,
)
from livegen.kernels.midi_scan import unclosed_notes
from livegen.kernels.time_steps import MICROSECONDS, TempoMap

# write_midi's resolution: 1000 ticks per quarter at 120 bpm is 0.5 ms a tick, so a 10 ms
# step is 20 ticks and the decoder's 0.5 ms sub-step slots survive a trip through a file.
WRITE_TICKS_PER_BEAT = 1000
WRITE_TICKS_PER_SECOND = WRITE_TICKS_PER_BEAT * MICROSECONDS // DEFAULT_TEMPO  # 2000


def _array(values: object, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=dtype))


@dataclass
class Notes:
    """Notes as parallel arrays, sorted by (start, pitch); times in seconds.

    ``channel`` is the note's pedal group: the MIDI channel for live input; for a file, the
    index of the (track, channel, program) instrument it came from, the unit note_seq (via
    pretty_midi) and symusic both split a file into.
    """

    start: np.ndarray
    end: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    channel: np.ndarray

    def __post_init__(self) -> None:
        self.start = _array(self.start, np.float64)
        self.end = _array(self.end, np.float64)
        self.pitch = _array(self.pitch, np.int64)
        self.velocity = _array(self.velocity, np.int64)
        self.channel = _array(self.channel, np.int64)
        lengths = {len(a) for a in (self.start, self.end, self.pitch, self.velocity, self.channel)}
        if len(lengths) != 1:
            raise ValueError(f"Notes arrays differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @classmethod
    def empty(cls) -> Notes:
        return cls(*(np.zeros(0) for _ in range(5)))

    def sorted(self) -> Notes:
        """A copy ordered by (start, pitch), ties keeping their current order."""
        order = np.lexsort((self.pitch, self.start))
        return self.take(order)

    def take(self, index: np.ndarray) -> Notes:
        return Notes(
            self.start[index],
            self.end[index],
            self.pitch[index],
            self.velocity[index],
            self.channel[index],
        )

    def shifted(self, seconds: float) -> Notes:
        """The same notes, `seconds` later."""
        return Notes(
            self.start + seconds, self.end + seconds, self.pitch, self.velocity, self.channel
        )

    @classmethod
    def joined(cls, parts: list[Notes]) -> Notes:
        """All the parts' notes in one, sorted."""
        fields = ("start", "end", "pitch", "velocity", "channel")
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields)).sorted()


@dataclass
class ExactTimes:
    """A file's times as exact integers (TempoMap units), aligned with its Performance's
    notes and pedal events: what the encoder quantises, so that ties round up."""

    tempo_map: TempoMap
    start: np.ndarray  # int64 units, one per note
    end: np.ndarray
    pedal: np.ndarray  # int64 units, one per pedal event


@dataclass
class Performance:
    """What a MIDI file holds for the encoding: notes and sustain-pedal (CC64) events.

    Pedal events are in time order; ``pedal_channel`` uses the same groups as Notes.channel.
    ``exact`` (from read_midi) holds the same times as integers; whoever changes the notes'
    times must drop it (then the float seconds are quantised).
    """

    notes: Notes
    pedal_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pedal_channel: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pedal_value: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    unclosed_notes: int = 0  # note-ons with no note-off: dropped (kernels/midi_scan.py)
    exact: ExactTimes | None = None

    def __post_init__(self) -> None:
        self.pedal_time = _array(self.pedal_time, np.float64)
        self.pedal_channel = _array(self.pedal_channel, np.int64)
        self.pedal_value = _array(self.pedal_value, np.int64)


# ---------------------------------------------------------------- reading MIDI files


def _check_structure(data: bytes, path: object) -> None:
    """Reject what is not a standard MIDI file before the C++ parser sees it.

    Checks the MThd header and that every chunk header and length lies inside the file, so
    the error names the actual problem (empty, not MIDI, truncated).
    """
    if not data:
        raise MidiFileError(path, "empty file")
    if data[:4] != b"MThd":
        raise MidiFileError(path, "not a MIDI file (no MThd header)")
    if len(data) < 14:
        raise MidiFileError(path, "truncated MIDI header")
    header_length = int.from_bytes(data[4:8], "big")
    if header_length < 6 or 8 + header_length > len(data):
        raise MidiFileError(path, f"bad MIDI header length {header_length}")
    fmt = int.from_bytes(data[8:10], "big")
    n_tracks = int.from_bytes(data[10:12], "big")
    division = int.from_bytes(data[12:14], "big")
    if fmt > 2:
        raise MidiFileError(path, f"unknown MIDI format {fmt}")
    if division == 0:
        raise MidiFileError(path, "MIDI header gives zero ticks per quarter note")
    offset = 8 + header_length
    found = 0
    while offset + 8 <= len(data) and found < n_tracks:
        length = int.from_bytes(data[offset + 4 : offset + 8], "big")
        if offset + 8 + length > len(data):
            raise MidiFileError(path, f"truncated MIDI file (chunk at byte {offset})")
        if data[offset : offset + 4] == b"MTrk":
            found += 1
        offset += 8 + length
    if found < n_tracks:
        raise MidiFileError(path, f"truncated MIDI file ({found} of {n_tracks} tracks)")


def _parse(data: bytes, path: object):
    import symusic  # the C++ parser; imported here so `import tokenizer` stays light

    try:
        return symusic.Score.from_midi(data)
    except Exception as error:  # symusic raises RuntimeError/ValueError variants
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MidiFileError(path, f"corrupt MIDI file ({reason})") from None


def read_midi(path: str | os.PathLike, *, include_drums: bool = False) -> Performance:
    """Notes and sustain events of a MIDI file; raises MidiFileError naming the file.

    Note-offs pair with the OLDEST open note-on of the same pitch in their (track, channel,
    program) instrument (symusic's pairing; the live encoder uses the same rule).
    Drum instruments (channel 10) are left out unless include_drums. A note-on that no
    note-off ends is dropped and counted in Performance.unclosed_notes (callers report it).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MidiFileError(path, "no such file") from None
    except IsADirectoryError:
        raise MidiFileError(path, "is a directory") from None
    except OSError as error:
        raise MidiFileError(path, f"cannot read ({error.strerror or error})") from None
    _check_structure(data, path)
    performance = parse_performance(data, path, include_drums=include_drums)
    performance.unclosed_notes = unclosed_notes(data, include_drums=include_drums)
    return performance


def parse_performance(data: bytes, path: object, *, include_drums: bool = False) -> Performance:
    """The Performance of a MIDI file's bytes (symusic's parse, no structure check or count of
    unclosed notes: read_midi adds those); raises MidiFileError naming `path`."""
    score = _parse(data, path)
    try:
        return _performance_from_score(score, include_drums=include_drums)
    except (ValueError, OverflowError, IndexError) as error:
        raise MidiFileError(path, f"corrupt MIDI file ({error})") from None


def _performance_from_score(score, include_drums: bool = False) -> Performance:
    tpq = int(score.ticks_per_quarter)
    if tpq <= 0:
        raise ValueError(f"ticks per quarter {tpq}")
    tempos = score.tempos.numpy() if len(score.tempos) else {"time": [], "mspq": []}
    tempo_map = TempoMap(tpq, tempos["time"], tempos["mspq"])

    starts, ends, pitches, velocities, groups = [], [], [], [], []
    pedal_ticks, pedal_groups, pedal_values = [], [], []
    for group, track in enumerate(score.tracks):
        if track.is_drum and not include_drums:
            continue
        if len(track.notes):
            notes = track.notes.numpy()
            onset = notes["time"].astype(np.int64)
            starts.append(onset)
            ends.append(onset + np.maximum(notes["duration"].astype(np.int64), 0))
            # symusic hands pitch/velocity out as int8; bytes above 127 come out negative.
            pitches.append(notes["pitch"].astype(np.int64) & 0xFF)
            velocities.append(notes["velocity"].astype(np.int64) & 0xFF)
            groups.append(np.full(onset.shape[0], group, dtype=np.int64))
        if len(track.controls):
            controls = track.controls.numpy()
            is_pedal = controls["number"] == SUSTAIN_CC
            pedal_ticks.append(controls["time"][is_pedal].astype(np.int64))
            pedal_values.append(controls["value"][is_pedal].astype(np.int64))
            pedal_groups.append(np.full(int(is_pedal.sum()), group, dtype=np.int64))

    def joined(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    pitch, velocity = joined(pitches), joined(velocities)
    # Notes a MIDI byte cannot hold only come from corrupt data; velocity 0 is a note-off.
    valid = (pitch <= 127) & (velocity >= 1) & (velocity <= 127)
    start = tempo_map.units(joined(starts)[valid])
    end = tempo_map.units(joined(ends)[valid])
    pitch, velocity, group = pitch[valid], velocity[valid], joined(groups)[valid]
    order = np.lexsort((pitch, start))  # (start, pitch), ties in file order
    start, end = start[order], end[order]
    seconds = tempo_map.seconds_of_units
    notes = Notes(seconds(start), seconds(end), pitch[order], velocity[order], group[order])
    pedal = tempo_map.units(joined(pedal_ticks))
    pedal_order = np.argsort(pedal, kind="stable")
    pedal = pedal[pedal_order]
    return Performance(
        notes,
        seconds(pedal),
        joined(pedal_groups)[pedal_order],
        joined(pedal_values)[pedal_order],
        exact=ExactTimes(tempo_map, start, end, pedal),
    )


# ---------------------------------------------------------------- encoding and decoding


def _sustain(perf: Performance, notes: Notes) -> tuple[np.ndarray, np.ndarray]:
    """(new ends, kept) of `notes` (perf's, maybe reordered) under perf's pedal (seconds)."""
    return kernels.apply_sustain(
        notes.start,
        notes.end,
        notes.pitch,
        notes.channel,
        perf.pedal_time,
        perf.pedal_channel,
        perf.pedal_value,
    )


def _sustain_exact(perf: Performance, exact: ExactTimes) -> tuple[np.ndarray, np.ndarray]:
    """(new ends in units, kept) of perf's notes under its pedal, on the exact times."""
    notes = perf.notes
    return kernels.apply_sustain(
        exact.start,
        exact.end,
        notes.pitch,
        notes.channel,
        exact.pedal,
        perf.pedal_channel,
        perf.pedal_value,
    )


def sustained_notes(perf: Performance) -> Notes:
    """The notes as the encoding sees them: pedal applied, wiped-out notes removed."""
    notes = perf.notes
    if perf.exact is not None:
        new_units, keep = _sustain_exact(perf, perf.exact)
        new_end = perf.exact.tempo_map.seconds_of_units(new_units)
    else:
        new_end, keep = _sustain(perf, notes)
    result = Notes(notes.start, new_end, notes.pitch, notes.velocity, notes.channel)
    return result.take(np.flatnonzero(keep))


def encode_performance(perf: Performance) -> np.ndarray:
    """Token ids (int16, no BEGIN/END) of a performance; equals note_seq's encoding, except
    that a file's time exactly on a half step always rounds up (note_seq's float seconds
    sometimes round it down)."""
    notes = perf.notes
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int16)
    exact = perf.exact
    if exact is not None:  # read_midi's notes, already in (start, pitch) order of exact times
        new_units, keep = _sustain_exact(perf, exact)
        steps = exact.tempo_map.steps_of_units
        return kernels.encode_steps(
            steps(exact.start), steps(new_units), notes.pitch, notes.velocity, keep
        )
    order = np.lexsort((notes.pitch, notes.start))
    if not np.array_equal(order, np.arange(len(notes))):
        notes = notes.take(order)
    new_end, keep = _sustain(perf, notes)
    return kernels.encode_notes(notes.start, new_end, notes.pitch, notes.velocity, keep)


def encode_notes(notes: Notes) -> np.ndarray:
    """Token ids of notes with no pedal."""
    return encode_performance(Performance(notes))


def encode_file(path: str | os.PathLike, *, include_drums: bool = False) -> np.ndarray:
    """read_midi + encode_performance."""
    return encode_performance(read_midi(path, include_drums=include_drums))


def decode_tokens(tokens: Iterable[int] | np.ndarray) -> Notes:
    """Notes of any token sequence (never raises on ids; see performance.decode_tokens)."""
    array = np.asarray(tokens if isinstance(tokens, np.ndarray) else list(tokens))
    if array.size == 0:
        return Notes.empty()
    if array.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, not {array.dtype}")
    # Ids beyond the vocabulary are skipped anyway: clip so every integer dtype fits int64.
    low = -1 if array.dtype.kind == "i" else 0
    array = np.clip(array.ravel(), low, 1 << 30).astype(np.int64)
    start, end, pitch, velocity = kernels.decode_tokens(array)
    notes = Notes(start, end, pitch, velocity, np.zeros(start.shape[0], dtype=np.int64))
    return notes.sorted()


# ---------------------------------------------------------------- writing MIDI files


def _track_channel(index: int) -> int:
    """Track i plays on channel i, skipping the drum channel, wrapping after 15."""
    melodic = [c for c in range(CHANNELS) if c != DRUM_CHANNEL]
    return melodic[index % len(melodic)]


def write_midi(
    path: str | os.PathLike,
    tracks: Sequence[tuple[str, Notes]],
    *,
    programs: Sequence[int] | None = None,
) -> None:
    """A standard MIDI file (type 1), one track per (name, notes), 120 bpm, 1000 ticks/beat.

    Track i plays on its own channel (0, 1, ... skipping drums). At equal ticks note-offs
    come before note-ons, so a re-struck note is not cut by the previous note's release;
    a note lasts at least one tick.
    """
    import mido

    if programs is not None and len(programs) != len(tracks):
        raise ValueError(f"{len(programs)} programs for {len(tracks)} tracks")
    midi = mido.MidiFile(type=1, ticks_per_beat=WRITE_TICKS_PER_BEAT)
    for index, (name, notes) in enumerate(tracks):
        channel = _track_channel(index)
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=name, time=0))
        if index == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=DEFAULT_TEMPO, time=0))
        if programs is not None:
            track.append(
                mido.Message("program_change", program=int(programs[index]), channel=channel)
            )
        on_tick = np.rint(np.maximum(notes.start, 0.0) * WRITE_TICKS_PER_SECOND).astype(np.int64)
        off_tick = np.rint(np.maximum(notes.end, 0.0) * WRITE_TICKS_PER_SECOND).astype(np.int64)
        off_tick = np.maximum(off_tick, on_tick + 1)
        count = len(notes)
        # (tick, 0 = off / 1 = on, note order) sorts the messages.
        ticks = np.concatenate((off_tick, on_tick))
        is_on = np.concatenate((np.zeros(count, dtype=np.int64), np.ones(count, dtype=np.int64)))
        which = np.concatenate((np.arange(count), np.arange(count)))
        now = 0
        for e in np.lexsort((which, is_on, ticks)):
            i = which[e]
            kind = "note_on" if is_on[e] else "note_off"
            velocity = int(np.clip(notes.velocity[i], 1, 127)) if is_on[e] else 0
            track.append(
                mido.Message(
                    kind,
                    note=int(notes.pitch[i]) & DATA_MASK,
                    velocity=velocity,
                    channel=channel,
                    time=int(ticks[e] - now),
                )
            )
            now = int(ticks[e])
        track.append(mido.MetaMessage("end_of_track", time=0))
        midi.tracks.append(track)
    midi.save(os.fspath(path))


def tokens_to_midi(tokens: Iterable[int] | np.ndarray, path: str | os.PathLike) -> None:
    """decode_tokens + write_midi (one track)."""
    write_midi(path, [("livegen", decode_tokens(tokens))])
