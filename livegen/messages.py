"""Everything that crosses a process or thread boundary, as small frozen dataclasses.

Who sends what (docs/ARCHITECTURE.md draws it):

- the UI host -> the engine process: the engine's calls (SetControls, Play, ...), replies
  Reply / Raised;
- the MIDI input thread, the UI's calls and the children's reader threads -> the conductor's
  inbox: MidiIn, RealtimeIn, ControlsChanged, ... and the children's own messages as they are;
- the conductor -> the decode worker: PlayerEvents, Cut, Plan / NoPlan, SetSampling,
  SetLookahead; back: WorkerReady, ModelNote, TurnOver, WorkerStats, Log, Failed;
- the conductor -> the audio process: SynthNote, SynthControl, CancelAfter, Silence,
  SetProgram, ResetCounters; back: AudioReady, AudioStats, Failed, Stopped;
- Stop ends any child.

Receivers dispatch on the type (match/case). Nothing here imports torch, the engine or the UI:
every process imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def message(cls: type) -> type:
    """A frozen, slotted dataclass that pickles as its class and field values (a tenth of the
    time the default slotted-dataclass pickling takes: these cross pipes all the time)."""
    cls = dataclass(frozen=True, slots=True)(cls)
    names = cls.__slots__

    def reduce(self):  # noqa: ANN001, ANN202
        return cls, tuple(getattr(self, name) for name in names)

    cls.__reduce__ = reduce
    return cls


# ---- any child -------------------------------------------------------------------------------


@message
class Stop:
    """End: the child finishes what it must (the take, the stream) and exits."""


@message
class Failed:
    """A child could not start, or crashed: the reason, to show as it is."""

    reason: str


@message
class Log:
    """A line for the engine's log."""

    line: str


# ---- the conductor <-> the decode worker -------------------------------------------------------


@message
class PlayerEvent:
    """One player note event at its (final or previewed) 10 ms session step."""

    step: int
    on: bool
    pitch: int
    velocity_bin: int = 0  # note-ons only
    arrival: float = 0.0  # perf_counter of the key's arrival (once per strike): input timing

    def same_note(self, other: PlayerEvent) -> bool:
        """The same event, whenever it arrived (a preview that came out as previewed)."""
        return (self.step, self.on, self.pitch, self.velocity_bin) == (
            other.step,
            other.on,
            other.pitch,
            other.velocity_bin,
        )


@message
class PlayerEvents:
    """The player's events now final, the step up to which their stream is final, and the
    not-yet-final events of the current step (a preview: they stand until a message brings
    final events or another preview)."""

    events: tuple[PlayerEvent, ...]
    final_step: int
    tentative: tuple[PlayerEvent, ...] = ()

    def then(self, newer: PlayerEvents) -> PlayerEvents:
        """This message and a newer one as one: the final events in order, the newer final
        step, and the newest preview. A message with neither final events nor a preview (only
        the clock moved) leaves the standing preview in place. A backlog costs one prefill."""
        preview = newer.tentative if newer.events or newer.tentative else self.tentative
        return PlayerEvents(self.events + newer.events, newer.final_step, preview)


@message
class Cut:
    """The engine dropped every model note it had not sent. The worker rolls back to just after
    the note numbered `last_sent` (0: none; never before the player's last token); with
    close_step it ends the model's sounding notes there (the engine already sent their
    note-offs); with hold_step it writes nothing until the player's stream is final up to that
    step. Notes the worker makes from now on carry `epoch`; so do the notes the engine had
    not sent that the worker keeps, before the player's last token, which it sends again."""

    epoch: int
    last_sent: int
    close_step: int | None = None
    hold_step: int | None = None


@message
class Plan:
    """The model's turn in session steps. first_note: it opens with a note, not a rest.
    max_notes (call mode): once spent, the turn ends as soon as its notes have ended."""

    start: int
    end: int
    first_note: bool
    max_notes: int | None = None


@message
class NoPlan:
    """The model has no turn: write nothing more."""


@message
class Sampling:
    """The sampling controls a musician turns live (models/sampling.py's SamplingParams
    fields of the same names)."""

    temperature: float = 1.0
    top_p: float = 0.95
    low_pitch: int = 21
    high_pitch: int = 108
    density: float = 0.0

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@message
class SetSampling:
    sampling: Sampling


@message
class SetLookahead:
    steps: int  # how far ahead of the clock the model may write, in 10 ms steps


@message
class WorkerReady:
    device: str
    context: int  # the model's context (N) and latents (L)
    latents: int


@message
class ModelNote:
    """A model note-on (on=True) or note-off, to sound at session step `step`. `number` counts
    the worker's notes: a Cut names the last one the engine sent by it."""

    epoch: int
    number: int
    step: int
    on: bool
    pitch: int
    velocity: int


@message
class TurnOver:
    """The planned turn ended; its notes are closed."""

    epoch: int
    step: int


@message
class WorkerStats:
    tokens: int = 0
    tokens_per_s: float = 0.0  # since the last stats
    ms_per_token_p50: float = 0.0
    ms_per_token_p99: float = 0.0
    ahead_steps: float = 0.0
    input_ms: tuple[float, ...] = ()  # player note arrival -> in the context, since the last
    transit_ms: tuple[float, ...] = ()  # the part before the worker had it
    cpu_s: float = 0.0
    # An audio model's worker (livegen/audio_worker.py): frames written ahead of the callback,
    # frames it wrote after their time, and how much faster than real time it writes them.
    frames_ahead: float = 0.0
    late_frames: int = 0
    realtime_factor: float | None = None


@message
class Handover:
    """A preset swap: the worker sends its context (ContextDump) and ends."""


@message
class ContextDump:
    """A worker's context, final tokens only: each token and its author (models.grammar's
    PLAYER or MODEL), the session step after the last, how far the player is final."""

    tokens: tuple[int, ...]
    owners: tuple[int, ...]
    session_step: int
    final_step: int


@message
class Prime:
    """A fresh worker's first context (the one it takes over from); its notes carry `epoch`.
    A worker started to take over holds every other message until this one comes."""

    dump: ContextDump
    epoch: int


@message
class WorkerExited:
    """Said by the engine's handle when the worker's pipe closed."""


# ---- the conductor <-> the audio process ------------------------------------------------------


@message
class SynthNote:
    """A note-on (velocity 0: off) at session time t. Cancellable ones are the model's, sent
    ahead of time: a CancelAfter drops them."""

    t: float
    channel: int
    pitch: int
    velocity: int
    cancellable: bool = False


@message
class SynthControl:
    t: float
    channel: int
    number: int
    value: int


@message
class CancelAfter:
    """Drop the model's (cancellable) events after session time t. With an audio model, the
    cut's epoch too: its frames of earlier epochs fade out from t and play no more."""

    t: float
    epoch: int = 0


@message
class Silence:
    """Panic: drop everything pending, stop every voice."""


@message
class SetProgram:
    channel: int
    program: int


@message
class ResetCounters:
    """The jam begins: loading's hiccups do not count."""


@message
class AudioReady:
    device: str
    latency: float


@message
class AudioStats:
    xruns: int = 0
    late: int = 0  # events whose frame had already been rendered when they arrived
    max_callback_ms: float = 0.0
    slow_callbacks: int = 0
    max_gap_ms: float = 0.0
    cpu_s: float = 0.0
    scheduling: str | None = None  # livegen.realtime's word for the callback's scheduling
    # An audio model's voice (livegen/model_voice.py): its frames played, those missing
    # mid-turn when their time came, its turns begun and when the last one's sound went out.
    model_frames: int = 0
    model_late_frames: int = 0
    model_onsets: int = 0
    model_onset: float | None = None


@message
class Stopped:
    """The audio process' last words (its final stats came before)."""


# ---- into the conductor's inbox (other threads of the engine's process) ------------------------


@message
class MidiIn:
    """A checked channel message from the player."""

    data: tuple[int, ...]
    arrival: float  # perf_counter


@message
class RealtimeIn:
    """MIDI clock, start, stop, song position."""

    status: int
    data: tuple[int, ...]
    arrival: float


@message
class ControlsChanged:
    old: Any  # livegen.controls.Controls
    new: Any


@message
class ProposeTempo:
    """Link: ask the session for this tempo."""

    bpm: float


@message
class PortChange:
    which: str  # "input" or "output"
    change: str  # "lost" or "back"


@message
class Panic:
    """All notes off."""


@message
class SwapPreset:
    """Load this preset in a fresh decode worker; it takes over at the next turn boundary."""

    name: str


@message
class SwapLoaded:
    """The new preset's worker is ready (or, with `reason`, could not load)."""

    generation: int
    reason: str | None = None


# ---- the UI host <-> the engine process -------------------------------------------------------


@message
class GetControls:
    pass


@message
class SetControls:
    changes: dict[str, Any] = field(default_factory=dict)


@message
class Play:
    data: tuple[int, ...]  # a channel message's bytes


@message
class GetNow:
    pass


@message
class GetStats:
    pass


@message
class GetRoll:
    since: float


@message
class DrainLog:
    pass


@message
class GetSnapshot:
    seconds: float  # the roll's last seconds


@message
class Snapshot:
    """What one UI poll reads, in one round trip. Unpacks and indexes as (stats, now, roll,
    log, controls), as the tuple it replaces did."""

    stats: Any  # livegen.controls.Stats
    now: float
    roll: list
    log: list[str]
    controls: Any

    def __iter__(self):  # noqa: ANN204
        return iter((self.stats, self.now, self.roll, self.log, self.controls))

    def __getitem__(self, index: int) -> Any:
        return tuple(self)[index]

    def __len__(self) -> int:
        return 5


@message
class Reply:
    value: Any = None


@message
class Raised:
    error: BaseException
