"""The model's notes on their way out: intake from the decode worker, waiting for their time,
snapping to the grid, and out through the fan-out.

The decode worker writes ahead of the clock; its notes wait in a heap until they are due. The
synth gets each at once (it renders at the exact frame, and a cut cancels what it had not
played). A cut (the player played) drops every note not yet sent by moving to a new epoch:
notes still in flight from the worker carry the old epoch and are ignored when they land. The
last note sent is remembered by its number (the worker maps numbers to its context).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from livegen.fanout import MODEL, NoteFanout
from livegen.kernels.time_steps import step_to_seconds
from livegen.messages import ModelNote

LATE_TOLERANCE = 0.010  # a model note sent more than one 10 ms step after its time is late
MAX_NOTE_SLACK = 1.0  # a model note the worker left on this long past its max is ended here


@dataclass(order=True)
class ModelEvent:
    due: float  # session seconds
    seq: int
    note: ModelNote = field(compare=False)
    late: bool = field(compare=False, default=False)  # already counted late on arrival
    # Quantised notes wait here until shortly before their time, then snap to the grid with
    # the clock's estimate of that moment (not the one from when the worker wrote them):
    # while `raw` is set, `due` is when to snap and the note has not been sent.
    raw: float | None = field(compare=False, default=None)


class ModelScheduler:
    def __init__(self) -> None:
        self.epoch = 0
        self._heap: list[ModelEvent] = []
        self._seq = 0
        self.last_sent = 0  # the number of the last model note sent

    def add(self, event: ModelEvent) -> bool:
        """Queue an event; False (dropped) if it belongs to an epoch that was cut."""
        if event.note.epoch != self.epoch:
            return False
        self._seq += 1
        event.seq = self._seq
        heapq.heappush(self._heap, event)
        return True

    def next_due(self) -> float | None:
        return self._heap[0].due if self._heap else None

    def pop_due(self, now: float) -> list[ModelEvent]:
        out = []
        while self._heap and self._heap[0].due <= now:
            event = heapq.heappop(self._heap)
            if event.raw is None:  # a snap is not a send
                self.last_sent = max(self.last_sent, event.note.number)
            out.append(event)
        return out

    def cut(self) -> int:
        """Drop everything not yet sent; returns the new epoch."""
        self._heap.clear()
        self.epoch += 1
        return self.epoch


class ModelOutput:
    """Run on the conductor thread. `grid()` returns (beat clock, division) while onsets
    snap to a grid (None: they do not); `say` writes to the engine's log."""

    def __init__(
        self,
        fanout: NoteFanout,
        channel: int,
        max_note_seconds: float,
        grid: Callable[[], tuple | None],
        say: Callable[[str], None],
        measured: dict[str, list[float]] | None = None,
    ) -> None:
        self.fanout = fanout
        self.channel = channel
        self.max_note_seconds = max_note_seconds
        self._grid, self._say = grid, say
        self.measured = measured  # every figure (benchmarks/bench_jam.py)
        self.scheduler = ModelScheduler()
        self.sounding: dict[int, list] = {}  # pitch -> [first start, strikes]
        self.onset_shifts: dict[int, float] = {}  # pitch -> how far quantising moved its onset
        self.late = 0
        self.reaction_ms = 0.0
        # (decided time, turn end) of the turn awaiting its first note: how fast we answered
        self.awaiting: tuple[float, float] | None = None

    # ---- in ----------------------------------------------------------------------------------

    def take(self, note: ModelNote, now: float) -> None:
        """A note from the worker: queued for its time (dropped if a cut came since)."""
        if note.epoch != self.scheduler.epoch:
            return
        due = step_to_seconds(note.step)
        event = ModelEvent(due, 0, note)
        if due < now - LATE_TOLERANCE:
            event.late = True
            self.late += 1
        grid = self._grid()
        if grid is not None:
            # Snap later, with the freshest tempo: half a grid step (+ 10 ms) early.
            clock, division = grid
            event.raw, event.due = due, due - clock.seconds_per_beat / division / 2 - 0.01
            self.scheduler.add(event)
            return
        self.scheduler.add(event)
        velocity = note.velocity if note.on else 0
        self.fanout.synth_note(due, self.channel, note.pitch, velocity, cancellable=True)

    def next_due(self) -> float | None:
        return self.scheduler.next_due()

    def cut(self) -> tuple[int, int]:
        """Drop every note not sent yet: (the new epoch, the last note sent)."""
        return self.scheduler.cut(), self.scheduler.last_sent

    # ---- out ---------------------------------------------------------------------------------

    def dispatch(self, now: float) -> None:
        for event in self.scheduler.pop_due(now):
            if event.raw is not None:
                self._snap(event, now)
                continue
            note = event.note
            if note.on:
                self._note_on(event, now)
            elif note.pitch in self.sounding:
                self._note_off(event)
            if not event.late and now - event.due > LATE_TOLERANCE:
                self.late += 1
            if self.measured is not None:
                self.measured.setdefault("dispatch_late_ms", []).append((now - event.due) * 1e3)

    def _quantized(self, due: float, on: bool, pitch: int, now: float) -> float:
        """Snap a model onset to the clock's grid (never into the past); its note-off moves
        with it, so the note keeps its length."""
        shifts = self.onset_shifts
        if not on:
            return max(now, due + shifts.pop(pitch, 0.0))
        grid = self._grid()
        if grid is None:
            return max(now, due)
        clock, division = grid
        snapped = clock.quantize(due, division)
        if snapped < now + 0.001:  # the nearest grid point has passed: the next one
            snapped = clock.next_grid(now + 0.001, division)
        shifts[pitch] = snapped - due
        return snapped

    def _snap(self, event: ModelEvent, now: float) -> None:
        """A quantised note's time has nearly come: place it on the grid and queue it."""
        note = event.note
        event.due = self._quantized(event.raw, note.on, note.pitch, now)
        event.raw = None
        if self.scheduler.add(event):
            velocity = note.velocity if note.on else 0
            self.fanout.synth_note(event.due, self.channel, note.pitch, velocity, cancellable=True)

    def _note_on(self, event: ModelEvent, now: float) -> None:
        note = event.note
        if self.awaiting is not None:  # the turn's first note: how fast we answered
            decided, end = self.awaiting
            self.reaction_ms = max(0.0, now - decided) * 1e3
            self._say(f"model's turn until {end:.2f} s (reaction {self.reaction_ms:.1f} ms)")
            if self.measured is not None:
                self.measured["reaction_ms"].append(self.reaction_ms)
            self.awaiting = None
        self.fanout.note(MODEL, self.channel, note.pitch, note.velocity, event.due, synth=False)
        self.sounding.setdefault(note.pitch, [event.due, 0])[1] += 1

    def _note_off(self, event: ModelEvent) -> None:
        """One note-off per note-on, also for a re-struck pitch (a DAW pairs them up)."""
        pitch = event.note.pitch
        self.fanout.note(MODEL, self.channel, pitch, 0, event.due, synth=False)
        sounding = self.sounding[pitch]
        sounding[1] -= 1
        if not sounding[1]:
            del self.sounding[pitch]

    # ---- ending notes ------------------------------------------------------------------------

    def silence(self, t: float) -> None:
        """End every sounding model note now."""
        for pitch in list(self.sounding):
            self.end_note(pitch, t)

    def end_note(self, pitch: int, t: float) -> None:
        """End a sounding model note now: one note-off per strike (out, recorded, rolled),
        and its voice in the synth."""
        _, strikes = self.sounding.pop(pitch)
        for _ in range(strikes):
            self.fanout.note(MODEL, self.channel, pitch, 0, t, synth=False)
        self.fanout.synth_note(t, self.channel, pitch, 0)

    def guard(self, now: float) -> None:
        """Belt and braces: the worker's grammar guard ends every model note in time; if the
        worker died, this does."""
        limit = self.max_note_seconds + MAX_NOTE_SLACK
        for pitch, (start, strikes) in list(self.sounding.items()):
            if now - start > limit * strikes:
                self.end_note(pitch, now)
                self._say(f"ended a model note left on ({pitch})")
