"""The streaming tokenizer: MIDI messages in, the offline encoder's tokens out, step by step.

LiveEncoder applies the same rules as livegen.kernels.tokenizer (note_seq's sustain walk,
10 ms quantisation, note_seq's event order) incrementally. It looks only backwards and holds
back one 10 ms step: step s is final once the clock reaches the time that quantises to s+1,
i.e. step_to_seconds(s + 0.5), because by then every event that rounds to s is known. A
note's end is known at the event that ends it (its note-off, the pedal release, a re-strike),
so finality never waits for the future.

Messages become notes as in read_midi: a note-off (or note-on with velocity 0) closes the
OLDEST open note-on of the same (channel, pitch); a note-off with nothing open is ignored.
Sustain (CC64 >= 64 down) acts per channel; channel 10 (drums) is left out unless asked for.
Messages dated before the last finalised step are clamped to the first open step
(``step_to_seconds(final_step + 1)``) and counted; within the open step, messages are
reordered by time. ``performance_from_messages`` builds the offline Performance of a message stream, so
``encode_performance(performance_from_messages(stream))`` is what the live encoder emits
(given the same clamped times); the tests check exactly that.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import mido
import numpy as np

from livegen.kernels.midi_codes import DRUM_CHANNEL, SUSTAIN_CC, pedal_down
from livegen.kernels.time_steps import seconds_to_step, step_to_seconds, time_shift_tokens
from livegen.kernels.tokenizer import Notes, Performance
from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, VELOCITY, velocity_to_bin

# Kinds of the sustain walk, in the order note_seq processes equal times.
_PEDAL_DOWN, _PEDAL_UP, _ONSET, _OFFSET = 0, 1, 2, 3

# A key struck again and again without a note-off keeps its strikes queued for pairing;
# past this many the oldest is forgotten, so a broken controller cannot grow memory forever.
MAX_OPEN_PER_KEY = 1024


quantize = seconds_to_step  # the offline kernel's rounding rule (kernels/time_steps.py)


def classify(message: mido.Message, include_drums: bool = False) -> tuple | None:
    """(kind, channel, number, value) of a message the encoding uses, else None.

    kind is "on", "off" or "pedal"; number is the pitch (notes) or unused (pedal).
    """
    kind = message.type
    if kind not in ("note_on", "note_off", "control_change"):
        return None
    channel = message.channel
    if channel == DRUM_CHANNEL and not include_drums:
        return None
    if kind == "control_change":
        if message.control != SUSTAIN_CC:
            return None
        return ("pedal", channel, 0, message.value)
    if kind == "note_on" and message.velocity > 0:
        return ("on", channel, message.note, message.velocity)
    return ("off", channel, message.note, 0)


def performance_from_messages(
    events: Iterable[tuple[mido.Message, float]], *, include_drums: bool = False
) -> Performance:
    """The offline Performance of timestamped messages (the live encoder's rules).

    Messages are taken in time order (ties in the order given); a note never released ends
    at the last note or pedal event, as LiveEncoder.flush() ends it.
    """
    rows = [(time, classify(m, include_drums)) for m, time in events]
    rows = sorted(((t, c) for t, c in rows if c is not None), key=lambda r: r[0])
    starts, ends, pitches, velocities, channels = [], [], [], [], []
    pedal_time, pedal_channel, pedal_value = [], [], []
    open_keys: dict[tuple[int, int], deque[int]] = {}
    last = None
    for time, (kind, channel, number, value) in rows:
        if kind == "pedal":
            pedal_time.append(time)
            pedal_channel.append(channel)
            pedal_value.append(value)
        elif kind == "on":
            open_keys.setdefault((channel, number), deque()).append(len(starts))
            starts.append(time)
            ends.append(math.nan)
            pitches.append(number)
            velocities.append(value)
            channels.append(channel)
        else:
            waiting = open_keys.get((channel, number))
            if not waiting:
                continue  # a note-off with nothing to close
            ends[waiting.popleft()] = time
        last = time
    ends = [last if math.isnan(e) else e for e in ends]
    notes = Notes(starts, ends, pitches, velocities, channels).sorted()
    return Performance(notes, pedal_time, pedal_channel, pedal_value)


class _Note:
    __slots__ = (
        "start",
        "start_step",
        "release",
        "pitch",
        "velocity",
        "channel",
        "order",
        "deleted",
    )

    def __init__(self, start: float, pitch: int, velocity: int, channel: int, order: int) -> None:
        self.start = start
        self.start_step = quantize(start)
        self.release: float | None = None  # time of its note-off message, once paired
        self.pitch = pitch
        self.velocity = velocity
        self.channel = channel
        self.order = order  # creation order: breaks (start, pitch) ties as the offline sort does
        self.deleted = False

    def sort_key(self) -> tuple[float, int, int]:
        return (self.start, self.pitch, self.order)


@dataclass
class LiveStats:
    """What the encoder did not take as given."""

    messages: int = 0
    ignored: int = 0  # not a note or CC64 (or a drum message)
    clamped: int = 0  # dated before the finalised boundary, moved up to it
    orphan_offs: int = 0  # note-offs with no open note
    forgotten: int = 0  # strikes dropped past MAX_OPEN_PER_KEY


class LiveEncoder:
    """Timestamped MIDI messages to final performance tokens, one 10 ms step behind.

    ``feed`` and ``advance`` return the tokens that became final; their concatenation with
    ``flush``'s equals the offline encoding of the same (clamped) message stream.
    """

    def __init__(self, *, include_drums: bool = False) -> None:
        self.include_drums = include_drums
        self.stats = LiveStats()
        self._reset()

    def _reset(self) -> None:
        self.clock = -math.inf  # latest time seen (messages and advance calls)
        self.final_step = -1  # every step up to this one has been emitted
        self._pending: list[tuple[float, int, tuple]] = []  # (time, arrival, classified)
        self._arrivals = 0
        self._notes_made = 0
        self._open: dict[tuple[int, int], deque[_Note]] = {}  # pairing queues per key
        self._held: dict[int, bool] = {}  # pedal down, per channel
        self._active: dict[int, list[_Note]] = {}  # notes the sustain walk tracks
        self._offs: dict[int, list[_Note]] = {}  # step -> notes whose offset is due there
        self._step = 0  # step of the last emitted event (time shifts count from here)
        self._bin = 0  # current velocity bin

    # ------------------------------------------------------------ public API

    def feed(self, message: mido.Message, time: float) -> list[int]:
        """Take one message played at ``time`` (seconds); return tokens now final."""
        classified = classify(message, self.include_drums)
        if classified is None:
            self.stats.messages += 1
            self.stats.ignored += 1
            return self.advance(time)
        return self.feed_event(*classified, time)

    def feed_event(
        self, kind: str, channel: int, number: int, value: int, time: float
    ) -> list[int]:
        """As feed, for what the jam already knows without a mido message: ("on", pitch,
        velocity > 0), ("off", pitch, 0) or ("pedal", 0, value) on a channel at ``time``."""
        self.stats.messages += 1
        if channel == DRUM_CHANNEL and not self.include_drums:
            self.stats.ignored += 1
            return self.advance(time)
        if quantize(time) <= self.final_step:
            time = step_to_seconds(self.final_step + 1)
            self.stats.clamped += 1
        self._insert(time, (kind, channel, number, value))
        return self.advance(time)

    def advance(self, time: float) -> list[int]:
        """The clock moved on to ``time`` with no message: emit the steps now final."""
        if time > self.clock:
            self.clock = time
        return self._finalize(quantize(self.clock) - 1)

    def flush(self) -> list[int]:
        """End of performance, now: release every held key and pedal at the clock, emit the rest.

        The releases are ordinary events at the latest time seen (``closing_messages``), so
        the result equals the offline encoding of the stream plus those messages. (Closing
        at the last event instead, note_seq's rule for files, could reach back into steps
        already emitted.) The encoder then starts afresh: a new performance, times from 0.
        """
        if self._pending or self._open or any(self._held.values()):
            for message in self.closing_messages():
                kind, channel, number, _ = classify(message, self.include_drums)
                # value -1 marks ours: a surplus closing note-off is not the player's orphan.
                self._insert(self.clock, (kind, channel, number, -1))
        onsets = self._process(math.inf)
        tokens = self._emit_until(math.inf, onsets)
        self._reset()
        return tokens

    def closing_messages(self) -> list[mido.Message]:
        """What flush() sends at the clock: a pedal-up on every channel that used the pedal,
        and for each key a note-off per strike still open or pending (extra ones are no-ops).
        """
        strikes: dict[tuple[int, int], int] = {k: len(q) for k, q in self._open.items()}
        channels = set(self._held)
        for _, _, (kind, channel, number, _) in self._pending:
            if kind == "on":
                strikes[(channel, number)] = strikes.get((channel, number), 0) + 1
            elif kind == "pedal":
                channels.add(channel)
        messages = [
            mido.Message("control_change", channel=c, control=SUSTAIN_CC, value=0)
            for c in sorted(channels)
        ]
        for (channel, pitch), count in sorted(strikes.items()):
            messages += [mido.Message("note_off", channel=channel, note=pitch)] * count
        return messages

    @property
    def pending(self) -> int:
        """Messages received but not yet final."""
        return len(self._pending)

    @property
    def offsets_due(self) -> bool:
        """Note endings scheduled at a later step (a release under the pedal, a note shorter
        than a step): advance() still has tokens to give even with no message pending."""
        return bool(self._offs)

    @property
    def scheduled_offsets(self) -> int:
        """Note endings waiting for their step (bounded by the notes sounding)."""
        return sum(len(notes) for notes in self._offs.values())

    @property
    def tracked_notes(self) -> int:
        """Notes the sustain walk still follows (sounding, or held by a pedal)."""
        return sum(len(notes) for notes in self._active.values())

    @property
    def open_keys(self) -> int:
        """(channel, pitch) keys with a strike waiting for its note-off."""
        return len(self._open)

    # ------------------------------------------------------------ processing

    def _insert(self, time: float, classified: tuple) -> None:
        bisect.insort(self._pending, (time, self._arrivals, classified))
        self._arrivals += 1

    def _finalize(self, target: int) -> list[int]:
        if target <= self.final_step:
            return []
        tokens = self._emit_until(target, self._process(target))
        self.final_step = target
        return tokens

    def _process(self, target: float) -> list[_Note]:
        """Run the pending messages of steps up to ``target``; return their new notes."""
        count = 0
        while count < len(self._pending) and quantize(self._pending[count][0]) <= target:
            count += 1
        if count == 0:
            return []
        batch = self._pending[:count]
        del self._pending[:count]
        return self._walk(self._pair(batch))

    def _pair(self, batch: list[tuple[float, int, tuple]]) -> list[tuple]:
        """Messages (in time order) to sustain-walk events; note-offs pair first in, first out."""
        events = []
        for time, _, (kind, channel, number, value) in batch:
            if kind == "pedal":
                events.append(
                    (time, _PEDAL_DOWN if pedal_down(value) else _PEDAL_UP, 0, 0, channel)
                )
            elif kind == "on":
                note = _Note(time, number, value, channel, self._notes_made)
                self._notes_made += 1
                queue = self._open.setdefault((channel, number), deque())
                if len(queue) >= MAX_OPEN_PER_KEY:
                    queue.popleft()
                    self.stats.forgotten += 1
                queue.append(note)
                # Equal-time onsets go in (pitch, creation) order: the offline list order.
                events.append((time, _ONSET, number, note.order, note))
            else:
                queue = self._open.get((channel, number))
                if not queue:
                    self.stats.orphan_offs += value >= 0
                    continue
                note = queue.popleft()
                if not queue:
                    del self._open[(channel, number)]
                note.release = time
                events.append((time, _OFFSET, 0, note.order, note))
        events.sort(key=lambda e: e[:4])
        return events

    def _walk(self, events: list[tuple]) -> list[_Note]:
        """note_seq's sustain walk over one batch; returns the batch's new notes."""
        onsets = []
        for time, kind, _, _, obj in events:
            if kind == _PEDAL_DOWN:
                self._held[obj] = True
            elif kind == _PEDAL_UP:
                self._held[obj] = False
                still = []
                for note in self._active.get(obj, ()):
                    if note.release is not None and note.release < time:
                        self._schedule_off(note, time)  # held only by the pedal
                    else:
                        still.append(note)
                self._active[obj] = still
            elif kind == _ONSET:
                channel_notes = self._active.setdefault(obj.channel, [])
                if self._held.get(obj.channel, False):
                    still = []
                    for note in channel_notes:
                        if note.pitch == obj.pitch:
                            note.deleted = note.start == time  # re-struck at its own start
                            self._schedule_off(note, time)
                        else:
                            still.append(note)
                    channel_notes[:] = still
                channel_notes.append(obj)
                onsets.append(obj)
            elif not self._held.get(obj.channel, False):
                channel_notes = self._active.get(obj.channel, [])
                for index, note in enumerate(channel_notes):
                    if note is obj:
                        del channel_notes[index]
                        self._schedule_off(obj, obj.release)
                        break
        return onsets

    def _schedule_off(self, note: _Note, end: float) -> None:
        if note.deleted:
            return
        step = max(quantize(end), note.start_step + 1)  # a note lasts at least one step
        self._offs.setdefault(step, []).append(note)

    def _emit_until(self, target: float, onsets: list[_Note]) -> list[int]:
        """Tokens of every step up to ``target`` that has events, in the offline order."""
        ons_by_step: dict[int, list[_Note]] = {}
        for note in onsets:
            if not note.deleted:
                ons_by_step.setdefault(note.start_step, []).append(note)
        steps = sorted({s for s in self._offs if s <= target} | set(ons_by_step))
        tokens: list[int] = []
        for step in steps:
            tokens += time_shift_tokens(step - self._step)
            self._step = step
            # Every offset in a step belongs to a note that started in an earlier step, so
            # it sorts before every onset of the step; within each group, by (start, pitch).
            for note in sorted(self._offs.pop(step, ()), key=_Note.sort_key):
                tokens.append(NOTE_OFF + note.pitch)
            for note in sorted(ons_by_step.get(step, ()), key=_Note.sort_key):
                velocity_bin = velocity_to_bin(note.velocity)
                if velocity_bin != self._bin:
                    self._bin = velocity_bin
                    tokens.append(VELOCITY + velocity_bin - 1)
                tokens.append(NOTE_ON + note.pitch)
        return tokens


def encode_messages(
    events: Iterable[tuple[mido.Message, float]], *, include_drums: bool = False
) -> np.ndarray:
    """Offline tokens of a message stream (times already in order or reorderable)."""
    from livegen.kernels.tokenizer import encode_performance

    return encode_performance(performance_from_messages(events, include_drums=include_drums))
