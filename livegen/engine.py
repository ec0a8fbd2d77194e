"""The live jam engine: the wiring of its parts and the conductor that runs them in time order.

Processes and threads (docs/ARCHITECTURE.md draws them; DESIGN.md: on 2 cores the GIL is the
enemy of a 2.7 ms audio block):

- this process: a MIDI input thread (checks bytes and rate limits: player_input.InputGate, and
  queues what passes), and the CONDUCTOR thread, which owns all the state and does everything
  else in time order: the player's keys (player_input.PlayerKeys), the mode's decisions
  (modes.TurnPlanner), the model's notes (model_output.ModelOutput), every note out through one
  fan-out (fanout.NoteFanout: MIDI out, recorder, roll, synth), the clocks
  (session_clock.SessionClock), port watching and the meters (engine_meters.Meters). The public
  methods only read snapshots or queue a typed message (livegen/messages.py) for it: none of
  them blocks.
- the decode worker (livegen/decode_worker.py): its own process, owns the model's context.
- the audio process (livegen/audio_out.py): FluidSynth in a sounddevice stream.

Each player note reaches the worker twice: at once, as a tentative event (so the model hears
it within a few ms), and when its 10 ms step is final (LiveEncoder: exactly the offline
tokens). While the model writes ahead, every player event first CUTS: the engine drops the
model's notes it has not sent, and the worker rolls its context back to the last one it did
send, then writes on after the player's notes.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
import traceback
from collections import deque

import mido

from livegen import link_clock
from livegen.clock import CLOCK, CONTINUE, SONG_POSITION, START, STOP
from livegen.controls import ClockSource, Controls, JamSettings, RollNote, Stats
from livegen.engine_parts import EngineError, PartsMixin
from livegen.fanout import NoteFanout
from livegen.kernels.midi_codes import (
    ALL_NOTES_OFF,
    CONTROL_CHANGE_STATUS,
    NOTE_OFF_STATUS,
    SUSTAIN_CC,
)
from livegen.kernels.time_steps import ms_to_steps, seconds_to_step, step_to_seconds
from livegen.messages import (
    ContextDump,
    ControlsChanged,
    Failed,
    Log,
    MidiIn,
    ModelNote,
    Panic,
    PortChange,
    ProposeTempo,
    RealtimeIn,
    SetLookahead,
    SetProgram,
    SetSampling,
    Silence,
    Stop,
    SwapLoaded,
    SwapPreset,
    TurnOver,
    WorkerExited,
    WorkerStats,
)
from livegen.model_output import ModelOutput
from livegen.player_input import InputGate, PlayerKeys, check_message, ends_notes
from livegen.roll_log import RollLog
from livegen.turn_taking import TurnTaking

__all__ = ["EngineError", "JamEngine"]

INBOX_LIMIT = 4096  # queued input messages; beyond, input is dropped (and counted)


class JamEngine(PartsMixin):
    def __init__(
        self,
        settings: JamSettings,
        controls: Controls | None = None,
        *,
        worker_mode: str = "process",
    ) -> None:
        settings.validate()
        self.settings = settings
        self._controls = controls if controls is not None else Controls()
        self._controls.validate()
        if self._controls.clock == ClockSource.LINK:
            link_clock.load_link()  # LinkUnavailable says how to install it, before anything loads
        self.worker_mode = worker_mode
        self._inbox: queue.Queue = queue.Queue(maxsize=INBOX_LIMIT)
        self._log: deque[str] = deque(maxlen=2000)
        self._roll = RollLog()
        self._stats = Stats()
        self.problems: dict[str, str] = {}
        self.t0: float | None = None
        self._running = False
        self._stopped = False
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._dropped = 0  # written by the MIDI input thread (an int add: atomic under the GIL)
        self.gate = InputGate()  # the input thread's checks and rate limits
        self.fanout = NoteFanout(self._roll, lambda: self._controls.recording)
        # Every figure, not just the meters' recent ones (benchmarks/bench_jam.py sets a dict).
        self.measured: dict[str, list[float]] | None = None
        self.preset = None
        self.midi_in = self.midi_out = self.clock_in = None
        self.audio = None
        self.worker = None
        self.recorder = None
        self.recording_path: str | None = None

    # ---- public API (any thread; never blocks) -----------------------------------------------

    @property
    def controls(self) -> Controls:
        return self._controls

    def set_controls(self, **changes: object) -> Controls:
        """Validate (ValueError names the bad one) and apply live."""
        old = self._controls
        new = old.changed(**changes)
        linked = new.clock == ClockSource.LINK
        if linked and old.clock != ClockSource.LINK and not link_clock.link_available():
            raise ValueError(link_clock.INSTALL_HINT)
        self._controls = new
        if self._running:
            self._put(ControlsChanged(old, new))
            if linked and "tempo_bpm" in changes:  # even if unchanged here: a peer moved it
                self._put(ProposeTempo(new.tempo_bpm))
        return new

    def play(self, message: mido.Message) -> None:
        """Player input from outside MIDI (the computer keyboard): the same path as MIDI in."""
        self.on_midi(message.bytes(), time.perf_counter())

    def panic(self) -> None:
        self._put(Panic())

    def swap_preset(self, name: str) -> None:
        """Another preset (a name or a TOML path) loads in a fresh decode worker while this one
        plays, primed with the jam so far; it takes over at the next turn boundary. stats():
        preset, preset_swap (while it is on its way), preset_swap_seconds; the log says how it
        went. A bad name or a model that fails to load: said there, the old model plays on."""
        self._put(SwapPreset(name))

    def now(self) -> float:
        return 0.0 if self.t0 is None else time.perf_counter() - self.t0

    def stats(self) -> Stats:
        snapshot = self._stats
        return dataclasses.replace(snapshot, problems=list(snapshot.problems))

    def roll(self, since: float) -> list[RollNote]:
        """Notes overlapping [since, now()], the player's and the model's; open ones end None."""
        return self._roll.since(since)

    def drain_log(self) -> list[str]:
        lines = []
        while self._log:
            lines.append(self._log.popleft())
        return lines

    @property
    def worker_stats(self) -> WorkerStats:
        """The decode worker's latest stats."""
        return self.meters.worker if self.meters is not None else WorkerStats()

    # ---- start / stop ------------------------------------------------------------------------

    def start(self) -> None:
        """Open ports, sound, recorder and the decode worker, then run. A missing audio device
        or MIDI system is a problem in stats(), not an error; a wrong port name or a bad
        preset raises a LivegenError saying what exists."""
        with self._lifecycle:
            if self._running or self._stopped:
                raise EngineError("an engine starts once; make a new JamEngine")
            try:
                self.open_parts()
            except BaseException:
                self.close_parts()
                self._stopped = True
                raise
            self._running = True
            self._thread = threading.Thread(
                target=self._conduct, name="livegen-conductor", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Panic, close everything, finalise the recording. Idempotent."""
        with self._lifecycle:
            if self._stopped:
                return
            self._stopped = True
            if self._running:
                self._put(Stop(), force=True)
                if self._thread is not None:
                    self._thread.join(timeout=10)
            self._running = False
            self.close_parts()

    def __enter__(self) -> JamEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def init_state(self) -> None:
        """The conductor's state, made when the parts open (the preset is known then)."""
        self.output = ModelOutput(
            self.fanout,
            self._controls.model_channel,
            self.preset.sampling.max_note_seconds,
            self._grid,
            self.say,
            self.measured,
        )
        self.turns = TurnTaking(
            lambda: self._controls,
            self.clock,
            self.output,
            self.fanout,
            lambda message: self.worker.send(message),
            self.say,
            self.t0,
        )
        self.keys = PlayerKeys(self.fanout, lambda: self._controls.passthrough, self.turns.hear)

    # ---- input (MIDI thread and play()) ------------------------------------------------------

    def _put(self, item: object, force: bool = False) -> None:
        try:
            self._inbox.put(item, block=force, timeout=1.0 if force else None)
        except queue.Full:
            self._dropped += 1

    def on_midi(self, data: list[int] | bytes, arrival: float) -> None:
        """Check the bytes here, in the input thread, so junk never costs the conductor."""
        if not data:
            return
        status = data[0]
        if status >= 0xF8:
            if status in (CLOCK, START, STOP, CONTINUE):
                self._put(RealtimeIn(status, (), arrival))
            return  # active sensing, reset: nothing to do
        if status == SONG_POSITION and len(data) == 3:
            self._put(RealtimeIn(status, tuple(data), arrival))
            return
        if not check_message(data):
            self._dropped += 1  # sysex, junk, truncated
            return
        if not self.gate.admit(data, arrival):
            return  # past a rate limit, or a note-off of a key that never went on (counted)
        # A full inbox may drop a note-on, never what ends a note: a note-off (or a pedal
        # release) lost here would leave the player's passthrough note sounding for good.
        self._put(MidiIn(tuple(data), arrival), force=ends_notes(data))

    def on_input_change(self, change: str) -> None:
        self._put(PortChange("input", change), force=True)

    def deliver(self, message: object) -> None:
        """A message for the conductor from another thread (a worker's reader, ...)."""
        self._put(message, force=True)

    # ---- the conductor -------------------------------------------------------------------

    def _conduct(self) -> None:
        next_housekeeping = 0.0
        self.clock.start(self.now())
        running = True
        while running:
            now = self.now()
            timeout = min(self._next_deadline(now), next_housekeeping) - now
            try:
                item = self._inbox.get(timeout=max(0.0, timeout))
            except queue.Empty:
                item = None
            while item is not None:
                running = self._safely(self._handle, item) and running
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    item = None
            now = self.now()
            self._safely(self.output.dispatch, now)
            self._safely(self._tick, now)
            if self.midi_out is not None and self.midi_out.backlog:
                self.midi_out.pump()
            self._safely(self.turns.flush)
            if now >= next_housekeeping:
                next_housekeeping = now + self.HOUSEKEEPING
                self._safely(self._housekeeping, now)
        self._safely(self._shutdown)

    def _safely(self, function, *args) -> bool:  # noqa: ANN001
        try:
            result = function(*args)
        except Exception:  # the conductor must outlive any bug in one handler
            self.say("internal error (the jam goes on):\n" + traceback.format_exc())
            return True
        return result is not False

    def _next_deadline(self, now: float) -> float:
        deadline = now + self.HOUSEKEEPING
        due = self.output.next_due()
        if due is not None:
            deadline = min(deadline, due)
        if self.turns.busy:
            deadline = min(deadline, step_to_seconds(seconds_to_step(now) + 0.55))
        tick = self.clock.next_tick()
        if tick is not None:
            deadline = min(deadline, tick)
        if self.midi_out is not None and self.midi_out.backlog:
            deadline = min(deadline, now + 0.001)  # paced output waiting for its turn
        return deadline

    def _handle(self, item: object) -> bool:
        match item:
            case MidiIn(data, arrival):
                self.keys.message(data, arrival - self.t0)
            case RealtimeIn(status, data, arrival):
                self.clock.follower.feed(status, data, arrival - self.t0)
            case ModelNote():
                self.output.take(item, self.now())
            case TurnOver(epoch):
                self.turns.turn_over(epoch, self.now())
            case WorkerStats():
                self.worker_said(item)
            case Log(line):
                self.say(line)
            case Failed(reason):
                self.worker_lost(reason)
            case WorkerExited():
                self.worker_lost("the decode worker exited")
            case ControlsChanged(old, new):
                self._apply_controls(old, new)
            case Panic():
                self._panic("panic")
            case ProposeTempo(bpm):
                self.clock.propose_tempo(bpm, self.now())
            case PortChange(which, change):
                self.port_change(which, change)
            case SwapPreset(name):
                self.swap_worker(name)
            case SwapLoaded(generation) if self.swap and self.swap.generation == generation:
                self.swap.loaded(item)
                self.swap.at_boundary(self.now())
            case ContextDump() if self.swap is not None:
                self.swap.handed_over(item)
            case Stop():
                return False
        return True

    def _tick(self, now: float) -> None:
        self.turns.tick(now)
        self.clock.send_ticks(now)

    def _grid(self) -> tuple | None:
        """(beat clock, division) while model onsets snap to the grid."""
        if not self._controls.quantize:
            return None
        return self.clock.beat_clock(self.now()), self._controls.quantize_division

    # ---- controls, panic, ports --------------------------------------------------------------

    def _apply_controls(self, old: Controls, new: Controls) -> None:
        now = self.now()
        sampling = self.sampling(new)
        if sampling != self.sampling(old):
            self.turns.tell(SetSampling(sampling))
        if new.lookahead_ms != old.lookahead_ms:
            self.turns.tell(SetLookahead(ms_to_steps(new.lookahead_ms)))
        self.clock.change(old, new, now)
        if new.model_channel != old.model_channel:
            self.output.silence(now)
            self.output.channel = new.model_channel
            if self.audio is not None:
                self.audio.send(SetProgram(new.model_channel, self.program()))
        if new.mode != old.mode or new.phrase_end != old.phrase_end:
            self._panic(f"mode {new.mode}")
        if new.recording != old.recording:
            self.say("recording " + ("on" if new.recording else "paused"))
        self.turns.replan(now)

    def _panic(self, why: str) -> None:
        """All notes off, everywhere; the model forgets its plans (not what it heard)."""
        self.turns.forget(self.now())
        send = self.fanout.send
        for channel, pitch in sorted(self.keys.passed):
            send([NOTE_OFF_STATUS | channel, pitch, 0])
        self.keys.passed.clear()
        for channel in range(16):
            send([CONTROL_CHANGE_STATUS | channel, SUSTAIN_CC, 0])
            send([CONTROL_CHANGE_STATUS | channel, ALL_NOTES_OFF, 0])
        self.fanout.synth(Silence())
        self.say(f"all notes off ({why})")

    def port_change(self, which: str, change: str) -> None:
        now = self.now()
        port = self.midi_in if which == "input" else self.midi_out
        name = port.name if port is not None else which
        if change == "lost":
            self.problems[which] = f"MIDI {which} {name!r} disappeared; waiting for it to return"
            self.say(f"MIDI {which} {name!r} lost")
            if which == "input":
                self.release_player(now)
            self._panic(f"{which} lost")
        else:
            self.problems.pop(which, None)
            self.say(f"MIDI {which} {name!r} is back")
            if which == "output":
                for channel in range(16):
                    self.fanout.send([CONTROL_CHANGE_STATUS | channel, ALL_NOTES_OFF, 0])

    def release_player(self, t: float) -> None:
        """The input vanished: end every note the player was holding, everywhere."""
        self.keys.release_all(t)
        self.gate.forget()
        self.turns.planner.release_all(t)

    def _housekeeping(self, now: float) -> None:
        self.housekeeping(now)
        self._stats = self.meter(now)

    @property
    def running(self) -> bool:
        return self._running

    @property
    def dropped_messages(self) -> int:
        """Input skipped: junk, a full inbox, past a rate limit, note-offs of no key down."""
        return self._dropped + self.gate.dropped + self.keys.dropped

    def say(self, line: str) -> None:
        self._log.append(f"[{self.now():8.2f}] {line}")

    def _shutdown(self) -> None:
        """Last words: the model's notes off, the player's passthrough off, clock stop."""
        self._panic("stop")
        self.clock.stop()
        self._running = False
        self._stats = dataclasses.replace(self.meter(self.now()), running=False)
