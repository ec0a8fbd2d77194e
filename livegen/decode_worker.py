"""The decode worker: owns the model's context and writes the model's part ahead of the clock.

It runs in a process of its own (default: the model's Python would otherwise hold the GIL the
MIDI and audio threads need) or, for comparison, in a thread (`mode="thread"`): the same loop,
the same pipe. benchmarks/bench_jam.py measures both.

Three parts: the context's ledger (livegen/worker_ledger.py: what each position holds,
rollback), the turn policy (livegen/worker_turns.py: when and what the model writes), and here
the core that applies the engine's messages to both, and the process loop around it.

Messages (livegen/messages.py): from the engine PlayerEvents, Cut, Plan / NoPlan, SetSampling,
SetLookahead, Stop; to the engine WorkerReady or Failed first, then ModelNote, TurnOver,
WorkerStats (a few times a second) and Log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import time
import traceback
from collections import deque
from dataclasses import dataclass

from livegen.kernels.time_steps import STEPS_PER_SECOND
from livegen.messages import (
    Cut,
    Failed,
    Handover,
    NoPlan,
    Plan,
    PlayerEvents,
    Prime,
    Sampling,
    SetLookahead,
    SetSampling,
    Stop,
    WorkerReady,
    WorkerStats,
)
from livegen.worker_handle import WorkerHandle
from livegen.worker_ledger import ContextLedger
from livegen.worker_turns import TurnPolicy

STATS_INTERVAL = 0.25


@dataclass
class WorkerSpec:
    preset: str  # path of the preset's TOML file
    t0: float  # the session clock's origin, time.perf_counter() seconds
    device: str | None = None
    seed: int = 0
    lookahead_steps: int = 20
    sampling: Sampling | None = None  # None: the preset's own
    threads: int = 1
    takes_over: bool = False  # a preset swap: hold every message until Prime comes
    follow_rhythm: bool = True  # False: the preset's follow_rhythm is ignored


class WorkerCore:
    """The worker's state and logic, free of processes and pipes (tests drive it directly).

    `emit(message)` sends a message to the engine; `clock()` is time.perf_counter.
    """

    def __init__(self, decoder, params, spec: WorkerSpec, emit, clock=time.perf_counter):  # noqa: ANN001
        import torch

        self.spec = spec
        self.emit = emit
        self.clock = clock
        self.ledger = ContextLedger(decoder)
        generator = torch.Generator().manual_seed(spec.seed)
        self.turns = TurnPolicy(self.ledger, params, generator, emit, spec.lookahead_steps)
        self.final_step = -1  # the player's stream is final up to this session step
        self.input_ms: deque[float] = deque(maxlen=64)
        self.transit_ms: deque[float] = deque(maxlen=64)  # the part before the worker had it
        self._stats_due = 0.0
        self._rate_mark: tuple[int, float] | None = None  # (tokens made, clock) at last stats
        self.held: list[object] | None = [] if spec.takes_over else None  # until Prime

    def now_step(self) -> float:
        return (self.clock() - self.spec.t0) * STEPS_PER_SECOND

    # ---- messages ----------------------------------------------------------------------------

    def handle(self, message: object) -> bool:
        """Apply one message; False for Stop, and after a Handover."""
        turns = self.turns
        if self.held is not None and not isinstance(message, Prime | Stop):
            self.held.append(message)  # they follow the context this worker takes over
            return True
        match message:
            case PlayerEvents():
                self._player(message)
            case Cut():
                self._cut(message)
            case Plan():
                turns.set_plan(message)
            case NoPlan():
                turns.withdraw(self.now_step())
            case SetSampling(sampling):
                turns.set_params(turns.params.replace(**sampling.fields()))
            case SetLookahead(steps):
                turns.lookahead_steps = int(steps)
            case Prime(dump, epoch):
                self.ledger.prime(dump)
                turns.epoch = epoch
                self._final(dump.final_step)
                held, self.held = self.held or [], None
                return all([self.handle(m) for m in held])
            case Handover():
                self.emit(self.ledger.dump(self.final_step))
                return False
            case Stop():
                return False
        return True

    def _player(self, message: PlayerEvents) -> None:
        arrived = self.clock()
        ledger = self.ledger
        events, tentative = message.events, message.tentative
        waiting = ledger.tentative_start is not None and not events and not tentative
        if waiting and message.final_step < min(e.step for e in ledger.tentative_events):
            # Only the clock moved (the engine reports it while it holds the model back) and
            # the previewed step is not final yet: the preview stands, no rollback, no refill.
            self._final(message.final_step)
            return
        ledger.take_player(events, tentative)
        self._final(message.final_step)
        now = self.clock()
        for event in (*events, *tentative):
            if event.on and event.arrival:
                self.input_ms.append((now - event.arrival) * 1e3)
                self.transit_ms.append((arrived - event.arrival) * 1e3)

    def _final(self, final_step: int) -> None:
        """The player's steps up to final_step are final; a hold up to there is over."""
        turns = self.turns
        self.final_step = max(self.final_step, int(final_step))
        if turns.hold_step is not None and self.final_step >= turns.hold_step:
            turns.hold_step = None

    def _cut(self, cut: Cut) -> None:
        turns = self.turns
        turns.epoch = cut.epoch
        kept = self.ledger.back_to_sent(cut.last_sent)
        if cut.close_step is not None:  # the engine silenced the model: nothing goes again
            turns.close_now(cut.close_step)
            kept = []
        turns.announce_again(cut.last_sent, kept)
        hold = cut.hold_step
        turns.hold_step = hold if hold is not None and hold > self.final_step else None

    # ---- generation --------------------------------------------------------------------------

    def work(self) -> bool:
        """Write one model token if the plan and the lookahead allow; True if it did."""
        now_step = self.now_step()
        if self.held is not None or not self.turns.wants_to_write(now_step):
            return False
        self.turns.write_one(now_step)
        return True

    def idle_timeout(self) -> float:
        return self.turns.idle_timeout(self.now_step())

    def stats(self) -> WorkerStats | None:
        now = self.clock()
        if now < self._stats_due:
            return None
        self._stats_due = now + STATS_INTERVAL
        made = self.turns.tokens_made
        rate = 0.0
        if self._rate_mark is not None and now > self._rate_mark[1]:
            rate = (made - self._rate_mark[0]) / (now - self._rate_mark[1])
        self._rate_mark = (made, now)
        ordered = sorted(self.ledger.decode_ms)
        pick = (lambda q: ordered[int(q * (len(ordered) - 1))]) if ordered else (lambda q: 0.0)
        inputs, transits = tuple(self.input_ms), tuple(self.transit_ms)
        self.input_ms.clear()
        self.transit_ms.clear()
        return WorkerStats(
            tokens=made,
            tokens_per_s=rate,  # since the last stats (every STATS_INTERVAL)
            ms_per_token_p50=pick(0.5),
            ms_per_token_p99=pick(0.99),
            ahead_steps=self.ledger.session_step() - self.now_step(),
            input_ms=inputs,
            transit_ms=transits,
            cpu_s=time.process_time(),
        )


def merge_player_messages(messages: list) -> list:
    """Consecutive PlayerEvents as one (PlayerEvents.then); other messages keep their place.
    A backlog costs one prefill. The engine merges what it sends with this too."""
    merged: list = []
    for message in messages:
        if isinstance(message, PlayerEvents) and merged and isinstance(merged[-1], PlayerEvents):
            merged[-1] = merged[-1].then(message)
        else:
            merged.append(message)
    return merged


def build_core(spec: WorkerSpec, emit) -> WorkerCore:  # noqa: ANN001
    """Load the preset's model, warm it up, and return a core ready to run."""
    import torch

    from livegen.models.follow import FollowSettings
    from livegen.models.loading import load_preset_model
    from livegen.models.preset import load_preset
    from livegen.models.sampling import SamplingParams
    from livegen.models.streaming import StreamingDecoder

    torch.set_num_threads(spec.threads)
    preset = load_preset(spec.preset)
    loaded = load_preset_model(preset, spec.device)
    decoder = StreamingDecoder(loaded.model)
    sampling = spec.sampling.fields() if spec.sampling is not None else {}
    params = SamplingParams.from_defaults(preset.sampling, **sampling)
    # Warm-up: the first calls of each kernel shape are slow; pay for them before the jam.
    decoder.append(list(range(300, 340)))
    for token in range(260, 276):
        decoder.append([token])
    decoder.append([280, 281, 282])  # a player's note: the short-append path
    decoder.rollback(8)
    core = WorkerCore(decoder, params, spec, emit)
    follow = FollowSettings.from_defaults(preset.sampling)
    if not spec.follow_rhythm:  # the player's time, not the model's: no pulse, no drawn rhythm
        follow = dataclasses.replace(follow, rhythm=0, rhythm_draw=False)
    core.turns.follow = follow
    gc.collect()  # then freeze what stays (the model, the loaded modules): full collections
    gc.freeze()  # stay short; in thread mode this is the engine's process, which is fine too
    emit(WorkerReady(loaded.describe(), decoder.N, decoder.L))
    return core


def run_worker(conn, spec: WorkerSpec) -> None:  # noqa: ANN001
    """The worker's loop: messages first, then one token at a time while the plan allows."""
    try:
        core = build_core(spec, conn.send)
    except Exception as error:  # a bad model file: the engine turns this into a clear error
        conn.send(Failed(f"{type(error).__name__}: {error}"))
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
                conn.poll(core.idle_timeout())
            stats = core.stats()
            if stats is not None:
                conn.send(stats)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the engine went away
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(Failed("decode worker crashed:\n" + traceback.format_exc()))


class DecodeWorker(WorkerHandle):
    """The engine's handle on the decode worker (livegen/worker_handle.py): `send` messages,
    `on_message` gets the replies (from a reader thread), then WorkerExited."""

    run = staticmethod(run_worker)
    name, what = "livegen-decode", "the decode worker"

    @staticmethod
    def coalesce(older: object, newer: object) -> object | None:
        """Two player messages waiting to be sent say what one merged message says."""
        if isinstance(older, PlayerEvents) and isinstance(newer, PlayerEvents):
            return older.then(newer)
        return None
