"""The decode worker: owns the model's context and writes the model's part ahead of the clock.

It runs in a process of its own (default: the model's Python would otherwise hold the GIL the
MIDI and audio threads need) or, for comparison, in a thread (`mode="thread"`): the same loop,
the same pipe. benchmarks/bench_jam.py measures both.

One token stream, two authors
-----------------------------
The context interleaves the player's tokens (from the engine's LiveEncoder, as timed events)
and the model's own, in time order. Time in the context is the sum of its TIME_SHIFTs (the
"context step", GrammarState.step); session step = context step + `offset`, where `offset`
grows when a long silence is cut down to MAX_GAP_STEPS (a minute of nobody playing should not
fill the context with TIME_SHIFTs).

Messages from the engine (tuples; the first item names them)
-------------------------------------------------------------
- ("player", events, final_step, tentative): the player's events [(session_step, kind, pitch,
  velocity_bin, arrival_time)] now final, the step up to which the player's stream is final,
  and the not-yet-final events of the current step (appended; they stand until a message
  brings final events or another preview).
- ("cut", epoch, keep, close_step, hold_step): the engine cancelled every model event it had
  not sent yet. Roll back to just after position `keep` (the last model event it did send;
  never before the player's last token); if close_step is set, end the model's sounding notes
  there (the engine already sent their note-offs); if hold_step is set, write nothing more
  until the player's stream is final up to that step. New events carry `epoch`.
- ("plan", start_step, end_step, first_note[, max_notes]): the model's turn, in session steps
  (None: no turn). first_note: the turn starts with a note, not with a rest. max_notes (call
  mode): the turn's note budget; once spent, the turn ends as soon as its notes have ended.
- ("controls", changes): SamplingParams fields and "lookahead_steps".
- ("stop",).

Messages to the engine
----------------------
- ("ready", info), ("error", text), ("log", text)
- ("event", epoch, position, session_step, on, pitch, velocity): a model note-on (on=True) or
  note-off, to sound at session step `session_step` (10 ms steps since the session began).
- ("turn_over", epoch, session_step): the planned turn ended; its notes are closed.
- ("stats", dict): a few times a second.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from livegen.child import Child
from livegen.kernels.errors import LivegenError
from livegen.kernels.vocab import (
    BEGIN,
    MAX_SHIFT_STEPS,
    NOTE_OFF,
    NOTE_ON,
    TIME_SHIFT,
    VELOCITY,
    bin_to_velocity,
)
from livegen.models.grammar import MODEL, PLAYER, GrammarState
from livegen.models.turns import MAX_TOKENS_PER_STEP, turn_mask
from livegen.outbox import Outbox

if TYPE_CHECKING:  # the engine imports this module; torch stays out of its process
    import torch

    from livegen.models.follow import Follower, FollowSettings

MAX_GAP_STEPS = 300  # silences longer than 3 s are shortened to 3 s in the context
STATS_INTERVAL = 0.25


class WorkerError(LivegenError):
    """The decode worker could not start (the model did not load) or died."""


@dataclass
class WorkerSpec:
    preset: str  # path of the preset's TOML file
    t0: float  # the session clock's origin, time.perf_counter() seconds
    device: str | None = None
    seed: int = 0
    lookahead_steps: int = 20
    sampling: dict[str, Any] = field(default_factory=dict)  # SamplingParams fields
    threads: int = 1


def _steps(session_seconds: float) -> float:
    return session_seconds * 100.0


class WorkerCore:
    """The worker's state and logic, free of processes and pipes (tests drive it directly).

    `emit(message)` sends a message to the engine; `clock()` is time.perf_counter.
    """

    def __init__(self, decoder, params, spec: WorkerSpec, emit, clock=time.perf_counter):  # noqa: ANN001
        import torch

        self.decoder = decoder
        self.params = params
        self.spec = spec
        self.emit = emit
        self.clock = clock
        self.lookahead_steps = spec.lookahead_steps
        self.generator = torch.Generator().manual_seed(spec.seed)
        self.grammar = GrammarState()
        self.offset = 0  # session step = context step + offset
        # Per position (index = position - self.base): (token, owner, offset after it).
        self.meta: deque[tuple[int, int, int]] = deque()
        self.base = 1  # position of meta[0] (position 0 is BEGIN)
        self.snapshots: dict[int, tuple[Any, int]] = {}  # position -> (grammar, offset)
        self.player_end = 1  # position just after the player's last final token
        self.tentative_start: int | None = None  # where not-yet-final player tokens begin
        self.tentative_events: list[tuple] = []  # the preview they came from
        self.final_step = -1  # the player's stream is final up to this session step
        self.epoch = 0
        self.hold_step: int | None = None
        self.plan: tuple[int, int, bool] | None = None  # (start, end, first_note)
        self.turn_started = False
        self.notes_left: int | None = None  # the turn's note budget left (None: no budget)
        self.follow: FollowSettings | None = None  # the preset's follow_* keys (build_core)
        self.follower: tuple[Follower, int] | None = None  # (follower, its step offset)
        self.step_tokens = (-1, 0)  # (context step, model tokens written at it)
        self.decode_ms: deque[float] = deque(maxlen=256)
        self.input_ms: deque[float] = deque(maxlen=64)
        self.transit_ms: deque[float] = deque(maxlen=64)  # the part before the worker had it
        self.tokens_made = 0
        self._stats_due = 0.0
        self._rate_mark: tuple[int, float] | None = None  # (tokens_made, clock) at last stats
        decoder.reset()
        decoder.append([BEGIN])
        self._snapshot()

    # ---- the context ---------------------------------------------------------------------

    @property
    def position(self) -> int:
        return self.decoder.position

    def session_step(self) -> int:
        return self.grammar.step + self.offset

    def now_step(self) -> float:
        return _steps(self.clock() - self.spec.t0)

    def _snapshot(self) -> None:
        """Remember grammar and offset here (rollback replays tokens from the nearest one)."""
        self.snapshots[self.position] = (self.grammar.snapshot(), self.offset)
        stale = [p for p in self.snapshots if p < self.base - 1]
        if len(self.snapshots) > 128:  # many player batches: keep the regular ones and the last
            stale += [p for p in sorted(self.snapshots)[:-16] if p % 32]
        for pos in stale:
            self.snapshots.pop(pos, None)

    def _write(self, tokens: list[int], owner: int) -> list[int]:
        """Account tokens (grammar, meta); the caller appends them to the decoder."""
        for token in tokens:
            self.grammar.update(token, owner)
            self.meta.append((token, owner, self.offset))
        while len(self.meta) > self.decoder.history_size:
            self.meta.popleft()
            self.base += 1
        return tokens

    def _append(self, tokens: list[int], owner: int) -> None:
        if not tokens:
            return
        self._write(tokens, owner)
        t0 = time.perf_counter()
        self.decoder.append(tokens)
        if len(tokens) == 1:
            self.decode_ms.append((time.perf_counter() - t0) * 1e3)
        if self.position % 32 == 0:
            self._snapshot()

    def rollback(self, position: int) -> None:
        """Back to `position` (tokens from there on dropped), grammar and offset included."""
        position = max(position, 1)
        if position >= self.position:
            return
        best = max((p for p in self.snapshots if p <= position), default=None)
        if best is None or best < self.base - 1:
            raise WorkerError(f"cannot roll back to {position}: no grammar snapshot")
        grammar, offset = self.snapshots[best]
        grammar = grammar.snapshot()
        for index in range(best - self.base, position - self.base):
            token, owner, offset = self.meta[index]
            grammar.update(token, owner)
        self.grammar, self.offset = grammar, offset
        for _ in range(self.position - position):
            self.meta.pop()
        for pos in [p for p in self.snapshots if p > position]:
            del self.snapshots[pos]
        self.decoder.rollback(position)

    def _time_tokens(self, target_session_step: int) -> list[int]:
        """TIME_SHIFTs that take the context to a session step (long gaps shortened)."""
        gap = int(target_session_step) - self.session_step()
        if gap <= 0:
            return []
        if gap > MAX_GAP_STEPS:
            self.offset += gap - MAX_GAP_STEPS
            gap = MAX_GAP_STEPS
        tokens = [TIME_SHIFT + MAX_SHIFT_STEPS - 1] * (gap // MAX_SHIFT_STEPS)
        if gap % MAX_SHIFT_STEPS:
            tokens.append(TIME_SHIFT + gap % MAX_SHIFT_STEPS - 1)
        return tokens

    def _event_tokens(self, events: list[tuple], owner: int) -> list[int]:
        """Tokens of timed events, written into grammar/meta as they are made."""
        tokens: list[int] = []
        for step, kind, pitch, velocity_bin, _arrival in events:
            tokens += self._write(self._time_tokens(step), owner)
            if kind == "on":
                if velocity_bin != self.grammar.velocity_bin:
                    tokens += self._write([VELOCITY + velocity_bin - 1], owner)
                tokens += self._write([NOTE_ON + pitch], owner)
            else:
                tokens += self._write([NOTE_OFF + pitch], owner)
        return tokens

    # ---- messages ----------------------------------------------------------------------------

    def handle(self, message: tuple) -> bool:
        """Apply one message; False for "stop"."""
        kind = message[0]
        if kind == "player":
            self._player(*message[1:])
        elif kind == "cut":
            self._cut(*message[1:])
        elif kind == "plan":
            start, end, first_note, *budget = message[1:]
            self.plan = None if start is None else (int(start), int(end), bool(first_note))
            self.turn_started = False
            self.notes_left = int(budget[0]) if budget and budget[0] is not None else None
            self.follower = None if self.plan is None else self._follower()
        elif kind == "controls":
            changes = dict(message[1])
            if "lookahead_steps" in changes:
                self.lookahead_steps = int(changes.pop("lookahead_steps"))
            if changes:
                self.params = self.params.replace(**changes)
                if self.follower is not None:
                    self.follower = self._follower()
        elif kind == "stop":
            return False
        return True

    def _player(self, events: list[tuple], final_step: int, tentative: list[tuple]) -> None:
        arrived = self.clock()
        waiting = self.tentative_start is not None and not events and not tentative
        if waiting and final_step < min(e[0] for e in self.tentative_events):
            # Only the clock moved (the engine reports it while it holds the model back) and
            # the previewed step is not final yet: the preview stands, no rollback, no refill.
            self._final(final_step)
            return
        if self.tentative_start is not None:
            previewed = self.tentative_events
            if previewed and [e[:4] for e in events[: len(previewed)]] == previewed:
                # The step came out as previewed (the usual case): those tokens are final as
                # they stand, with no rollback and no second prefill.
                events = events[len(previewed) :]
            else:
                self.rollback(self.tentative_start)
            self.tentative_start = None
        # Model tokens after the player's last one stand: the engine cuts (rolls them back)
        # before every player event while the model is writing.
        tokens = self._event_tokens(events, PLAYER)
        if tokens:
            self.decoder.append(tokens)
        self.player_end = self.position
        self._snapshot()
        if tentative:
            self.tentative_start = self.position
            self.tentative_events = [e[:4] for e in tentative]
            more = self._event_tokens(tentative, PLAYER)
            if more:
                self.decoder.append(more)
        self._final(final_step)
        now = self.clock()
        for event in [*events, *tentative]:
            if event[1] == "on" and event[4]:
                self.input_ms.append((now - event[4]) * 1e3)
                self.transit_ms.append((arrived - event[4]) * 1e3)

    def _final(self, final_step: int) -> None:
        """The player's steps up to final_step are final; a hold up to there is over."""
        self.final_step = max(self.final_step, int(final_step))
        if self.hold_step is not None and self.final_step >= self.hold_step:
            self.hold_step = None

    def _cut(self, epoch: int, keep: int, close_step: int | None, hold_step: int | None) -> None:
        self.epoch = epoch
        if self.tentative_start is not None:  # the next player message brings them again
            self.rollback(self.tentative_start)
            self.tentative_start = None
        self.rollback(max(keep + 1, self.player_end))
        if close_step is not None:  # the model yields: its turn is over
            self.plan = None
            closing = self.grammar.closing_tokens(MODEL)
            if closing:
                tokens = self._write(self._time_tokens(close_step), MODEL)
                tokens += self._write(closing, MODEL)
                self.decoder.append(tokens)
        self.hold_step = (
            hold_step if hold_step is not None and hold_step > self.final_step else None
        )

    # ---- generation --------------------------------------------------------------------------

    def margin_steps(self) -> int:
        """How far past now a model note must be placed so it is ready in time: three decode
        steps (time shift, velocity, note) at the recent p90, plus 3 ms of delivery."""
        if not self.decode_ms:
            return 2
        ordered = sorted(self.decode_ms)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        return max(1, math.ceil((3 * p90 + 3.0) / 10.0))

    def wants_to_write(self, now_step: float) -> bool:
        if self.plan is None or self.hold_step is not None or self.tentative_start is not None:
            return False
        start, end, _ = self.plan
        horizon = now_step + self.lookahead_steps
        return start <= horizon and self.session_step() < min(end, horizon)

    def work(self) -> bool:
        """Write one model token if the plan and the lookahead allow; True if it did."""
        now_step = self.now_step()
        if not self.wants_to_write(now_step):
            return False
        self._write_one(now_step)
        return True

    def _write_one(self, now_step: float) -> None:
        from livegen.models.sampling import sample_token

        start, end, _ = self.plan
        # Nothing the model writes may fall in the past: silence up to now (+ the margin a
        # note needs to be ready) and up to the turn's start is silence that really happens.
        earliest = max(start, math.ceil(now_step) + self.margin_steps())
        if self.session_step() < earliest:
            self._append(self._time_tokens(min(earliest, end)), MODEL)
            if self.session_step() >= end:
                self._end_turn()
                return
        params, rules = self.params, self._turn_rules(end)
        if self.follower is not None:
            params = self.follower[0].params(self.grammar.step - self.follower[1])
            rules = self.follower[0].restrict(rules)
        token = sample_token(self.decoder.logits(), params, self.grammar, self.generator, rules)
        self._append([token], MODEL)
        if self.follower is not None:
            self.follower[0].observe(token, self.grammar.step - self.follower[1])
        step, count = self.step_tokens
        self.step_tokens = (self.grammar.step, count + 1 if step == self.grammar.step else 1)
        self.tokens_made += 1
        if NOTE_ON <= token < TIME_SHIFT:
            self.turn_started = True
            self._emit_note(token < NOTE_OFF, token % 128, self.position - 1)
            if token < NOTE_OFF and self.notes_left is not None:
                self.notes_left -= 1
        spent = self.notes_left is not None and self.notes_left <= 0
        if self.session_step() >= end or (spent and not self.grammar.owned(MODEL)):
            self._end_turn()

    def _turn_rules(self, end: int) -> torch.Tensor | None:
        """What the turn allows next (models/turns.py's rules, from the worker's state)."""
        _, _, first_note = self.plan
        crowded = (
            self.step_tokens[1] >= MAX_TOKENS_PER_STEP and self.step_tokens[0] == self.grammar.step
        )
        return turn_mask(
            opening=first_note and not self.turn_started,
            room_steps=end - self.session_step(),
            crowded=crowded,
            notes_left=self.notes_left,
        )

    def _follower(self) -> tuple[Follower, int] | None:
        """Controls that follow what the player played in the context the worker remembers
        (models/follow.py): the player's notes, on the context's time line."""
        if self.follow is None or not self.follow.active:
            return None
        from livegen.models.follow import Follower

        tokens = [t for t, owner, _ in self.meta if owner == PLAYER or TIME_SHIFT <= t < VELOCITY]
        shown = GrammarState()
        shown.extend(tokens, PLAYER)
        offset = self.grammar.step - shown.step  # context step of the tokens' time 0
        return Follower(tokens, shown.step, self.params, self.follow), offset

    def _emit_note(self, on: bool, pitch: int, position: int) -> None:
        velocity = bin_to_velocity(self.grammar.velocity_bin) if self.grammar.velocity_bin else 64
        self.emit(("event", self.epoch, position, self.session_step(), on, pitch, velocity))

    def _end_turn(self) -> None:
        closing = self.grammar.closing_tokens(MODEL)
        first = self.position
        self._append(closing, MODEL)
        for index, token in enumerate(closing):
            self._emit_note(False, token - NOTE_OFF, first + index)
        self.emit(("turn_over", self.epoch, self.session_step()))
        self.plan = None

    def idle_timeout(self, now_step: float) -> float:
        """Seconds to wait for a message before the next token could be due."""
        if self.plan is None or self.hold_step is not None or self.tentative_start is not None:
            return 0.05
        start, _, _ = self.plan
        ahead = max(self.session_step(), start) - (now_step + self.lookahead_steps)
        return min(0.05, max(0.001, ahead / 100.0))

    def stats(self) -> dict[str, Any] | None:
        now = self.clock()
        if now < self._stats_due:
            return None
        self._stats_due = now + STATS_INTERVAL
        rate = 0.0
        if self._rate_mark is not None and now > self._rate_mark[1]:
            rate = (self.tokens_made - self._rate_mark[0]) / (now - self._rate_mark[1])
        self._rate_mark = (self.tokens_made, now)
        ordered = sorted(self.decode_ms)
        pick = (lambda q: ordered[int(q * (len(ordered) - 1))]) if ordered else (lambda q: 0.0)
        inputs, transits = list(self.input_ms), list(self.transit_ms)
        self.input_ms.clear()
        self.transit_ms.clear()
        return {
            "tokens": self.tokens_made,
            "tokens_per_s": rate,  # since the last stats (every STATS_INTERVAL)
            "ms_per_token_p50": pick(0.5),
            "ms_per_token_p99": pick(0.99),
            "ahead_steps": self.session_step() - self.now_step(),
            "input_ms": inputs,
            "transit_ms": transits,
            "cpu_s": time.process_time(),
        }


def merge_player_messages(messages: list[tuple]) -> list[tuple]:
    """Consecutive "player" messages as one: their final events in order, the last final
    step, and the newest preview. A message that brings neither final events nor a preview
    (only the clock moved) leaves the standing preview in place; final events supersede it.
    A backlog costs one prefill. The engine merges what it sends with this too."""
    merged: list[tuple] = []
    for message in messages:
        if message[0] == "player" and merged and merged[-1][0] == "player":
            _, events, _, preview = merged[-1]
            _, new_events, final, new_preview = message
            if new_events or new_preview:
                preview = new_preview
            merged[-1] = ("player", events + list(new_events), final, preview)
        else:
            merged.append(message)
    return merged


def build_core(spec: WorkerSpec, emit) -> WorkerCore:  # noqa: ANN001
    """Load the preset's model, warm it up, and return a core ready to run."""
    import torch

    from livegen.models.loading import load_preset_model
    from livegen.models.preset import load_preset
    from livegen.models.sampling import SamplingParams
    from livegen.models.streaming import StreamingDecoder

    torch.set_num_threads(spec.threads)
    preset = load_preset(spec.preset)
    loaded = load_preset_model(preset, spec.device)
    decoder = StreamingDecoder(loaded.model)
    params = SamplingParams.from_defaults(preset.sampling, **spec.sampling)
    # Warm-up: the first calls of each kernel shape are slow; pay for them before the jam.
    decoder.append(list(range(300, 340)))
    for token in range(260, 276):
        decoder.append([token])
    decoder.append([280, 281, 282])  # a player's note: the short-append path
    decoder.rollback(8)
    core = WorkerCore(decoder, params, spec, emit)
    from livegen.models.follow import FollowSettings

    core.follow = FollowSettings.from_defaults(preset.sampling)
    gc.collect()  # then freeze what stays (the model, the loaded modules): full collections
    gc.freeze()  # stay short; in thread mode this is the engine's process, which is fine too
    emit(("ready", {"device": loaded.describe(), "context": decoder.N, "latents": decoder.L}))
    return core


def run_worker(conn, spec: WorkerSpec) -> None:  # noqa: ANN001
    """The worker's loop: messages first, then one token at a time while the plan allows."""
    try:
        core = build_core(spec, conn.send)
    except Exception as error:  # a bad model file: the engine turns this into a clear error
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    try:
        running = True
        while running:
            waiting = []
            while conn.poll():
                waiting.append(conn.recv())
            for message in merge_player_messages(waiting):
                running = core.handle(message) and running
            if not running:
                break
            if not core.work():
                conn.poll(core.idle_timeout(core.now_step()))
            stats = core.stats()
            if stats is not None:
                conn.send(("stats", stats))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the engine went away
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(("error", "decode worker crashed:\n" + traceback.format_exc()))


def _process_entry(conn, spec: WorkerSpec) -> None:  # noqa: ANN001
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle
    run_worker(conn, spec)


class DecodeWorker:
    """The engine's handle on the worker: `send` messages, `on_message` gets the replies
    (from a reader thread), then ("exited",) when the worker is gone."""

    def __init__(self, spec: WorkerSpec, on_message, mode: str = "process") -> None:  # noqa: ANN001
        if mode not in ("process", "thread"):
            raise ValueError(f"worker mode must be 'process' or 'thread', got {mode!r}")
        self.on_message = on_message
        thread = mode == "thread"
        entry = run_worker if thread else _process_entry
        self._child = Child(entry, (spec,), "livegen-decode", thread=thread)
        self._outbox = Outbox(self._child.send, _coalesce, "livegen-decode-tx")

    @property
    def pid(self) -> int | None:
        return self._child.pid

    def launch(self) -> None:
        """Start loading (returns at once; wait_ready waits)."""
        self._child.launch()

    def wait_ready(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the model is loaded; returns what it says of itself (device, sizes).
        WorkerError with the worker's reason."""
        try:
            first = self._child.first(timeout)
        except EOFError:
            raise WorkerError("the decode worker exited while loading the model") from None
        if first is None:
            self.stop()
            raise WorkerError(f"the decode worker did not load the model within {timeout:.0f} s")
        if first[0] != "ready":
            self.stop()
            raise WorkerError(f"the model could not be loaded: {first[1]}")
        self._child.read(self.on_message, on_end=lambda: self.on_message(("exited",)))
        return first[1]

    def send(self, message: tuple) -> None:
        """Never blocks (see Outbox); a worker that is gone says so: ("exited",)."""
        self._outbox.put(message)

    def stop(self) -> None:
        self._outbox.close()
        self._child.stop()


def _coalesce(older: tuple, newer: tuple) -> tuple | None:
    """Two player messages waiting to be sent say what one merged message says."""
    if older[0] == "player" and newer[0] == "player":
        return merge_player_messages([older, newer])[0]
    return None
