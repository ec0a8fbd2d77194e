"""The live jam engine: MIDI in and out, the model's turns, sound, clock and recording.

Processes and threads (DESIGN.md: on 2 cores the GIL is the enemy of a 2.7 ms audio block):

- this process: a MIDI input thread (polls the port, checks bytes, queues them), and the
  CONDUCTOR thread, which owns all the state below and does everything else in time order:
  the player's notes (passthrough, recording, the live encoder), the mode's decisions, the
  model's events (due times, MIDI out), MIDI clock in and out, port watching and the meters.
  The public methods only read snapshots or queue a request for it: none of them blocks.
- the decode worker (livegen/decode_worker.py): its own process, owns the model's context.
- the audio process (livegen/audio_out.py): FluidSynth in a sounddevice stream.

Each player note reaches the worker twice: at once, as a tentative event (so the model hears
it within a few ms), and when its 10 ms step is final (LiveEncoder: exactly the offline
tokens). While the model writes ahead, every player event first CUTS: the engine drops the
model events it has not sent, and the worker rolls its context back to the last one it did
send, then writes on after the player's notes.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
import traceback
from collections import deque

import mido

from livegen import link_clock, realtime
from livegen.clock import CLOCK, SONG_POSITION, START, STOP, InternalClock, MidiClockFollower
from livegen.controls import ClockSource, Controls, JamSettings, RollNote, Stats
from livegen.decode_worker import merge_player_messages
from livegen.kernels.errors import LivegenError
from livegen.modes import TurnPlanner
from livegen.player_input import (
    ALL_NOTES_OFF,
    ALL_SOUND_OFF,
    RESET_CONTROLLERS,
    SUSTAIN,
    InputGate,
    check_message,
    ends_notes,
)
from livegen.player_stream import PlayerStream
from livegen.recorder import MODEL_TRACK, PLAYER_TRACK
from livegen.roll_log import RollLog
from livegen.scheduler import ModelEvent, ModelScheduler

LATE_TOLERANCE = 0.010  # a model event sent more than one 10 ms step after its time is late
HOUSEKEEPING = 0.05  # seconds between meter updates, turn checks and port checks
PORT_CHECK = 0.5
INBOX_LIMIT = 4096  # queued input messages; beyond, input is dropped (and counted)
MAX_NOTE_SLACK = 1.0  # the engine ends a model note the worker left on this long past its max
PLAYER, MODEL = "player", "model"
_CLOSE_ORDER = (  # the parts the engine opens: (attribute, method that ends it)
    ("clock_in", "close"),
    ("link", "close"),
    ("midi_in", "close"),
    ("worker", "stop"),
    ("audio", "stop"),
    ("midi_out", "close"),
    ("recorder", "close"),
)
DRUM_CHANNEL = 9


class EngineError(LivegenError):
    """The engine cannot start as configured."""


class JamEngine:
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
        self._problems: dict[str, str] = {}
        self._t0: float | None = None
        self._running = False
        self._stopped = False
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._scheduling_said: str | None = None  # the last line on real-time scheduling
        self._dropped = 0  # written by the MIDI input thread (an int add: atomic under the GIL)
        self.gate = InputGate()  # the input thread's checks and rate limits
        # Every figure, not just the meters' recent ones (benchmarks/bench_jam.py sets a dict).
        self.measured: dict[str, list[float]] | None = None
        self.preset = None
        self.midi_in = self.midi_out = self.clock_in = None
        self.link: link_clock.LinkClock | None = None  # the Link session, while following it
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
            self._put(("controls", old, new))
            if linked and "tempo_bpm" in changes:  # even if unchanged here: a peer moved it
                self._put(("link_tempo", new.tempo_bpm))
        return new

    def play(self, message: mido.Message) -> None:
        """Player input from outside MIDI (the computer keyboard): the same path as MIDI in."""
        self._on_midi(message.bytes(), time.perf_counter())

    def panic(self) -> None:
        self._put(("panic",))

    def now(self) -> float:
        return 0.0 if self._t0 is None else time.perf_counter() - self._t0

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

    # ---- start / stop ------------------------------------------------------------------------

    def start(self) -> None:
        """Open ports, sound, recorder and the decode worker, then run. A missing audio device
        or MIDI system is a problem in stats(), not an error; a wrong port name or a bad
        preset raises a LivegenError saying what exists."""
        with self._lifecycle:
            if self._running or self._stopped:
                raise EngineError("an engine starts once; make a new JamEngine")
            try:
                self._open()
            except BaseException:
                self._close()
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
                self._put(("stop",), force=True)
                if self._thread is not None:
                    self._thread.join(timeout=10)
            self._running = False
            self._close()

    def __enter__(self) -> JamEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _open(self) -> None:
        from livegen.midi_ports import (
            VIRTUAL_CLOCK,
            MidiInput,
            MidiOutput,
            MidiUnavailable,
            list_ports,
            resolve_port,
        )
        from livegen.models.checkpoint import load_config
        from livegen.models.preset import load_preset

        settings = self.settings
        self.preset = load_preset(settings.preset)  # PresetError names what exists
        load_config(self.preset.model_dir)  # a broken model folder fails here, clearly
        self._t0 = time.perf_counter()
        self._init_state()

        if settings.output != "none":
            self.midi_out = MidiOutput(settings.output, settings.api)
            try:
                self.midi_out.open()
            except MidiUnavailable as error:
                self._problem("midi", f"no MIDI: {error}")
                self.midi_out = None
        inputs = [settings.input] if settings.input not in ("none", "virtual") else []
        for name in [*inputs, *([settings.clock_in] if settings.clock_in else [])]:
            try:  # a wrong name fails now, not after the model has loaded
                resolve_port(name, list_ports(settings.api, "in"), "MIDI input")
            except MidiUnavailable as error:
                self._problem("midi", f"no MIDI: {error}")
        self._open_recorder()
        # The model loads (seconds) while the audio process starts: both at once.
        worker = self._launch_worker()
        self._open_audio()
        info = worker.wait_ready()
        self._say(f"model: {self.preset.name} on {info.get('device')}")
        if self.audio is not None:
            self.audio.send(("reset_counters",))
        # Input opens last: once its port exists, everything that hears it is ready.
        if settings.input != "none" and "midi" not in self._problems:
            self.midi_in = MidiInput(
                settings.input, self._on_midi, settings.api, on_change=self._on_input_change
            )
            try:
                self.midi_in.open()
            except MidiUnavailable as error:
                self._problem("midi", f"no MIDI: {error}")
                self.midi_in = None
        if settings.clock_in and "midi" not in self._problems:
            self.clock_in = MidiInput(settings.clock_in, self._on_midi, settings.api)
            self.clock_in.virtual_name = VIRTUAL_CLOCK
            self.clock_in.open()

    def _init_state(self) -> None:
        c = self._controls
        self.stream = PlayerStream()
        self.planner = TurnPlanner()
        self.scheduler = ModelScheduler()
        if c.clock == ClockSource.LINK:
            self.link = link_clock.LinkClock(c.tempo_bpm, self._t0)
            self._say("Ableton Link: joining the session on this network")
        self.internal_clock = InternalClock(c.tempo_bpm)
        self.follower = MidiClockFollower()
        # The player's keys that are down, by (channel, pitch) -> when struck. One entry per
        # key, not a count: a key struck again while down is re-struck (its sound ended
        # first), so one note-off always ends it, however many note-ons a flood sent.
        self.accepted: dict[tuple[int, int], float] = {}
        self.passed: set[tuple[int, int]] = set()  # those sounding through livegen
        self.model_sounding: dict[int, list] = {}  # model pitch -> [first start, strikes]
        self.onset_shifts: dict[int, float] = {}  # pitch -> how far quantising moved its onset
        self.port_checked = 0.0
        self.model_channel = c.model_channel
        self.max_note_seconds = self.preset.sampling.max_note_seconds
        self.sent_turn = None
        self.first_note_due: float | None = None  # decided time of the turn awaiting a note
        self.hold_step: int | None = None
        self._player_pending: tuple | None = None
        self.last_input = -1.0
        self.clock_tick = 0
        self.counters = {"late": 0, "reaction_ms": 0.0}
        self.input_overflows = 0
        self.worker_stats: dict = {}
        self.input_ms: deque[tuple[float, float]] = deque(maxlen=256)  # (when, ms)
        self.cpu_mark = (time.perf_counter(), 0.0)

    def _open_recorder(self) -> None:
        from livegen.recorder import Recorder, session_path

        if not self.settings.record_dir:
            return
        path = session_path(self.settings.record_dir)
        self.recorder = Recorder(path, tempo_bpm=self._controls.tempo_bpm)
        self.recorder.start()
        self.recording_path = str(path)
        self.recorder.add(MODEL_TRACK, 0.0, [0xC0 | self.model_channel, self._program()])
        self._say(f"recording to {path}")

    def _program(self) -> int:
        program = self.settings.program
        return self.preset.sound.program if program is None else program

    def _open_audio(self) -> None:
        from livegen.audio_out import AudioOut, AudioSpec

        settings = self.settings
        if settings.audio_device == "none":
            self._say("sound: off (--audio-device none)")
            return
        wav = None
        if settings.record_wav and self.recording_path:
            wav = str(os.path.splitext(self.recording_path)[0] + ".wav")
        spec = AudioSpec(
            t0=self._t0,
            soundfont=settings.soundfont or self.preset.sound.soundfont,
            device=settings.audio_device,
            sample_rate=settings.sample_rate,
            blocksize=settings.blocksize,
            programs={self.model_channel: self._program()},
            wav_path=wav,
        )
        self.audio = AudioOut(spec)
        self.audio.launch()
        problem = self.audio.wait_ready()
        if problem:
            self.audio = None
            self._problem("audio", problem + "; MIDI out and recording go on")
        else:
            self._say(f"sound: {self.audio.info.get('device')}")

    def _launch_worker(self):  # noqa: ANN202
        from livegen.decode_worker import DecodeWorker, WorkerSpec

        c = self._controls
        spec = WorkerSpec(
            preset=str(self.preset.source),
            t0=self._t0,
            device=self.settings.device,
            seed=self.settings.seed if self.settings.seed is not None else 0,
            lookahead_steps=round(c.lookahead_ms / 10),
            sampling=self._sampling(c),
        )
        self.worker = DecodeWorker(spec, self._on_worker, mode=self.worker_mode)
        self.worker.launch()
        return self.worker

    @staticmethod
    def _sampling(c: Controls) -> dict:
        return {
            "temperature": c.temperature,
            "top_p": c.top_p,
            "low_pitch": c.low_pitch,
            "high_pitch": c.high_pitch,
            "density": c.density,
        }

    def _close(self) -> None:
        # Inputs first (nothing new arrives), the recorder last (it hears everything sent).
        for name, ending in _CLOSE_ORDER:
            part = getattr(self, name)
            if part is not None:
                getattr(part, ending)()
                setattr(self, name, None)

    # ---- input (MIDI thread and play()) ------------------------------------------------------

    def _put(self, item: tuple, force: bool = False) -> None:
        try:
            self._inbox.put(item, block=force, timeout=1.0 if force else None)
        except queue.Full:
            self._dropped += 1

    def _on_midi(self, data: list[int] | bytes, arrival: float) -> None:
        """Check the bytes here, in the input thread, so junk never costs the conductor."""
        if not data:
            return
        status = data[0]
        if status >= 0xF8:
            if status in (CLOCK, START, STOP, 0xFB):
                self._put(("realtime", status, (), arrival))
            return  # active sensing, reset: nothing to do
        if status == SONG_POSITION and len(data) == 3:
            self._put(("realtime", status, tuple(data), arrival))
            return
        if not check_message(data):
            self._dropped += 1  # sysex, junk, truncated
            return
        if not self.gate.admit(data, arrival):
            return  # past a rate limit, or a note-off of a key that never went on (counted)
        # A full inbox may drop a note-on, never what ends a note: a note-off (or a pedal
        # release) lost here would leave the player's passthrough note sounding for good.
        self._put(("midi", tuple(data), arrival), force=ends_notes(data))

    def _on_input_change(self, change: str) -> None:
        self._put(("port", "input", change), force=True)

    def _on_worker(self, message: tuple) -> None:
        self._put(("worker", message), force=True)

    # ---- the conductor -------------------------------------------------------------------

    def _conduct(self) -> None:
        next_housekeeping = 0.0
        self._start_clock_out()
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
            self._safely(self._dispatch, now)
            self._safely(self._tick, now)
            if self.midi_out is not None and self.midi_out.backlog:
                self.midi_out.pump()
            self._safely(self._flush_player)
            if now >= next_housekeeping:
                next_housekeeping = now + HOUSEKEEPING
                self._safely(self._housekeeping, now)
        self._safely(self._shutdown)

    def _safely(self, function, *args) -> bool:  # noqa: ANN001
        try:
            result = function(*args)
        except Exception:  # the conductor must outlive any bug in one handler
            self._say("internal error (the jam goes on):\n" + traceback.format_exc())
            return True
        return result is not False

    def _next_deadline(self, now: float) -> float:
        deadline = now + HOUSEKEEPING
        due = self.scheduler.next_due()
        if due is not None:
            deadline = min(deadline, due)
        if self.stream.busy or self.hold_step is not None:
            deadline = min(deadline, (round(now * 100) + 0.55) / 100)
        if self._sending_clock():
            deadline = min(deadline, self.internal_clock.tick_time(self.clock_tick))
        if self.midi_out is not None and self.midi_out.backlog:
            deadline = min(deadline, now + 0.001)  # paced output waiting for its turn
        return deadline

    def _handle(self, item: tuple) -> bool:
        kind = item[0]
        if kind == "midi":
            self._player_message(item[1], item[2] - self._t0)
        elif kind == "realtime":
            self.follower.feed(item[1], item[2], item[3] - self._t0)
        elif kind == "worker":
            self._worker_message(item[1])
        elif kind == "controls":
            self._apply_controls(item[1], item[2])
        elif kind == "panic":
            self._panic("panic")
        elif kind == "link_tempo" and self.link is not None:
            self.link.propose_tempo(item[1], self.now())
        elif kind == "port":
            self._port_change(item[1], item[2])
        elif kind == "stop":
            return False
        return True

    # ---- the player ----------------------------------------------------------------------

    def _player_message(self, data: tuple[int, ...], t: float) -> None:
        kind, channel = data[0] & 0xF0, data[0] & 0x0F
        if kind == 0x90 and data[2] > 0:
            self._player_note_on(channel, data[1], data[2], t)
        elif kind in (0x80, 0x90):
            self._player_note_off(channel, data[1], t)
        elif kind == 0xB0:
            self._player_control(channel, data[1], data[2], t)
        else:  # program change, pitch bend, aftertouch: passed on and recorded as they are
            if self._controls.passthrough:
                self._send_out(list(data))
            self._record(PLAYER_TRACK, t, data)

    def _player_note_on(self, channel: int, pitch: int, velocity: int, t: float) -> None:
        arrival = t + self._t0
        key = (channel, pitch)
        if key in self.accepted:
            self._end_player_sound(key, t)  # re-struck while down: one sounding note a key
        self.accepted[key] = t
        self.last_input = t
        if self._controls.passthrough:
            self.passed.add(key)
            self._send_out([0x90 | channel, pitch, velocity])
            if self.audio is not None:
                self.audio.note(t, channel, pitch, velocity)
        self._record(PLAYER_TRACK, t, (0x90 | channel, pitch, velocity))
        self._roll.on(PLAYER, channel, pitch, velocity, t)
        if channel == DRUM_CHANNEL:
            return  # drums pass through; the model does not hear them
        action = self.planner.note_on(t, self._controls, self._keys_held())
        if action is not None:
            self._cut(close=action == "yield", hold=True, t=t)
        message = mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)
        events = self.stream.feed(message, t, arrival)
        self._send_player(events, self.stream.preview(t))
        self._replan(t)

    def _player_note_off(self, channel: int, pitch: int, t: float) -> None:
        key = (channel, pitch)
        if key not in self.accepted:
            self._dropped += 1  # its note-on was never taken (flood) or never came
            return
        del self.accepted[key]
        self.last_input = t
        self._end_player_sound(key, t)
        if channel == DRUM_CHANNEL:
            return
        if self.planner.note_off(t, self._controls, self._keys_held()) is not None:
            self._cut(close=False, hold=True, t=t)
        message = mido.Message("note_off", channel=channel, note=pitch)
        self._send_player(self.stream.feed(message, t), [])
        self._replan(t)

    def _end_player_sound(self, key: tuple[int, int], t: float) -> None:
        """A player's note ends: its passthrough sound off, the take and the roll told."""
        channel, pitch = key
        if key in self.passed:
            self.passed.discard(key)
            self._send_out([0x80 | channel, pitch, 0])
            if self.audio is not None:
                self.audio.note(t, channel, pitch, 0)
        self._record(PLAYER_TRACK, t, (0x80 | channel, pitch, 0))
        self._roll.off(PLAYER, channel, pitch, t)

    def _keys_held(self) -> int:
        """The player's keys down that the model hears (drums left out)."""
        return sum(1 for channel, _ in self.accepted if channel != DRUM_CHANNEL)

    def _player_control(self, channel: int, number: int, value: int, t: float) -> None:
        if number in (ALL_SOUND_OFF, ALL_NOTES_OFF):
            # All keys up on this channel: each held key ends on its own (so every note-off
            # reaches the output, the take and the model), then the controller passes on.
            for key in [k for k in self.accepted if k[0] == channel]:
                self._player_note_off(channel, key[1], t)
        if self._controls.passthrough:
            self._send_out([0xB0 | channel, number, value])
            if self.audio is not None:
                self.audio.control(t, channel, number, value)
        self._record(PLAYER_TRACK, t, (0xB0 | channel, number, value))
        if number in (SUSTAIN, RESET_CONTROLLERS) and channel != DRUM_CHANNEL:
            # Reset-all-controllers lifts the pedal too (MIDI 1.0), so the model hears it.
            self.last_input = t
            down = value if number == SUSTAIN else 0
            message = mido.Message("control_change", channel=channel, control=SUSTAIN, value=down)
            self._send_player(self.stream.feed(message, t), [])
        if self.planner.controller(t, number, value, self._controls):
            self._say(f"phrase end (controller {number})")
            self._replan(t)

    def _send_player(self, events: list, tentative: list) -> None:
        final = self.stream.final_step
        if events or tentative or self.hold_step is not None:
            self._tell_player(events, final, tentative)
            if self.hold_step is not None and final >= self.hold_step:
                self.hold_step = None

    def _tell_player(self, events: list, final: int, tentative: list) -> None:
        """Player events for the worker, merged until the conductor's loop ends (a flood
        becomes one message a loop: one prefill, not hundreds of small ones)."""
        message = ("player", list(events), final, tentative)
        pending = self._player_pending
        self._player_pending = (
            message if pending is None else merge_player_messages([pending, message])[0]
        )

    def _tell(self, message: tuple) -> None:
        """A message for the worker, after any player events still waiting (order matters)."""
        self._flush_player()
        self.worker.send(message)

    def _flush_player(self) -> None:
        if self._player_pending is not None:
            message, self._player_pending = self._player_pending, None
            self.worker.send(message)

    def _release_player(self, t: float) -> None:
        """The input vanished: end every note the player was holding, everywhere."""
        for channel, pitch in list(self.accepted):
            self._player_note_off(channel, pitch, t)
        self.gate.forget()
        self.planner.release_all(t)

    # ---- cuts, turns, the model's events -------------------------------------------------------

    def _cut(self, close: bool, hold: bool, t: float) -> None:
        """Drop the model's unsent events; close its sounding notes if it must yield."""
        epoch = self.scheduler.cut()
        if self.audio is not None:
            self.audio.send(("cancel", t))
        if close:
            self._silence_model(t)
        step = round(t * 100)
        if hold:
            self.hold_step = step
        keep = self.scheduler.last_sent_position
        self._tell(("cut", epoch, keep, step if close else None, step if hold else None))
        if close:
            self.first_note_due = None

    def _silence_model(self, t: float) -> None:
        for pitch in list(self.model_sounding):
            self._end_model_note(pitch, t)

    def _end_model_note(self, pitch: int, t: float) -> None:
        """End a sounding model note now: one note-off per strike (out, recorded, rolled),
        and its voice in the synth."""
        channel = self.model_channel
        _, strikes = self.model_sounding.pop(pitch)
        for _ in range(strikes):
            self._send_out([0x80 | channel, pitch, 0])
            self._record(MODEL_TRACK, t, (0x80 | channel, pitch, 0))
            self._roll.off(MODEL, channel, pitch, t)
        if self.audio is not None:
            self.audio.note(t, channel, pitch, 0)

    def _beat_clock(self):  # noqa: ANN202
        if self._controls.clock == ClockSource.LINK and self.link is not None:
            # Re-read at each use (about a microsecond): a peer's tempo change is in at once.
            self.link.refresh(self.now(), self._controls.nudge_ms / 1000)
            return self.link
        # Following MIDI clock, a stalled sender keeps its last tempo and phase: switching to
        # livegen's own grid for a moment would put notes between the followed beats.
        if self._controls.clock == ClockSource.MIDI and self.follower.has_estimate:
            return self.follower
        return self.internal_clock

    def _replan(self, now: float) -> None:
        turn = self.planner.plan(now, self._controls, self._beat_clock())
        if turn == self.sent_turn:
            return
        previous, self.sent_turn = self.sent_turn, turn
        if turn is None:
            self._tell(("plan", None, None, False))
            self.first_note_due = None
            return
        start, end = round(turn.start * 100), round(turn.end * 100)
        self._tell(("plan", start, end, turn.first_note, turn.max_notes))
        if previous is None or previous.start != turn.start:
            self.first_note_due = turn.decided

    def _worker_message(self, message: tuple) -> None:
        kind = message[0]
        if kind == "event":
            _, epoch, position, step, on, pitch, velocity = message
            if epoch != self.scheduler.epoch:
                return
            now, due = self.now(), step / 100.0
            event = ModelEvent(due, 0, epoch, position, on, pitch, velocity)
            if due < now - LATE_TOLERANCE:
                event.late = True
                self.counters["late"] += 1
            if self._controls.quantize:
                # Snap later, with the freshest tempo: half a grid step (+ 10 ms) early.
                beat = self._beat_clock().seconds_per_beat
                event.raw, event.due = due, due - beat / self._controls.quantize_division / 2 - 0.01
                self.scheduler.add(event)
                return
            self.scheduler.add(event)
            if self.audio is not None:
                self.audio.note(
                    due, self.model_channel, pitch, velocity if on else 0, cancellable=True
                )
        elif kind == "turn_over":
            if message[1] == self.scheduler.epoch:
                self.planner.turn_over()
                self._replan(self.now())
        elif kind == "stats":
            self.worker_stats = message[1]
            now = self.now()
            self.input_ms.extend((now, ms) for ms in message[1].get("input_ms", ()))
            if self.measured is not None:
                self.measured["input_ms"] += message[1].get("input_ms", [])
                self.measured.setdefault("transit_ms", []).extend(message[1].get("transit_ms", []))
                self.measured["ms_per_token"].append(message[1].get("ms_per_token_p50", 0.0))
        elif kind == "log":
            self._say(message[1])
        elif kind in ("error", "exited"):
            reason = message[1] if kind == "error" else "the decode worker exited"
            self._problem("worker", f"the model stopped: {reason.strip().splitlines()[-1]}")
            self.worker_stats = {}  # its meters (tokens/s...) stopped with it
            self._say(reason)
            self._silence_model(self.now())

    def _quantized(self, due: float, on: bool, pitch: int, now: float) -> float:
        """Snap a model onset to the clock's grid (never into the past); its note-off moves
        with it, so the note keeps its length."""
        shifts = self.onset_shifts
        if not on:
            return max(now, due + shifts.pop(pitch, 0.0))
        if not self._controls.quantize:
            return max(now, due)
        clock, division = self._beat_clock(), self._controls.quantize_division
        snapped = clock.quantize(due, division)
        if snapped < now + 0.001:  # the nearest grid point has passed: the next one
            snapped = clock.next_grid(now + 0.001, division)
        shifts[pitch] = snapped - due
        return snapped

    def _snap(self, event, now: float) -> None:  # noqa: ANN001
        """A quantised event's time has nearly come: place it on the grid and queue it."""
        event.due = self._quantized(event.raw, event.on, event.pitch, now)
        event.raw = None
        if self.scheduler.add(event) and self.audio is not None:
            velocity = event.velocity if event.on else 0
            self.audio.note(event.due, self.model_channel, event.pitch, velocity, cancellable=True)

    def _dispatch(self, now: float) -> None:
        for event in self.scheduler.pop_due(now):
            if event.raw is not None:
                self._snap(event, now)
                continue
            if event.on:
                self._model_note_on(event, now)
            elif event.pitch in self.model_sounding:
                self._model_note_off(event)
            if not event.late and now - event.due > LATE_TOLERANCE:
                self.counters["late"] += 1
            if self.measured is not None:
                self.measured.setdefault("dispatch_late_ms", []).append((now - event.due) * 1e3)

    def _model_note_on(self, event: ModelEvent, now: float) -> None:
        channel, pitch, velocity = self.model_channel, event.pitch, event.velocity
        self._send_out([0x90 | channel, pitch, velocity])
        self._record(MODEL_TRACK, event.due, (0x90 | channel, pitch, velocity))
        self._roll.on(MODEL, channel, pitch, velocity, event.due)
        self.model_sounding.setdefault(pitch, [event.due, 0])[1] += 1
        if self.first_note_due is not None:  # the turn's first note: how fast we answered
            reaction_ms = max(0.0, now - self.first_note_due) * 1e3
            self.counters["reaction_ms"] = reaction_ms
            turn = self.sent_turn
            until = f" until {turn.end:.2f} s" if turn is not None else ""
            self._say(f"model's turn{until} (reaction {reaction_ms:.1f} ms)")
            if self.measured is not None:
                self.measured["reaction_ms"].append(reaction_ms)
            self.first_note_due = None

    def _model_note_off(self, event: ModelEvent) -> None:
        """One note-off per note-on, also for a re-struck pitch (a DAW pairs them up)."""
        channel, pitch = self.model_channel, event.pitch
        self._send_out([0x80 | channel, pitch, 0])
        self._record(MODEL_TRACK, event.due, (0x80 | channel, pitch, 0))
        self._roll.off(MODEL, channel, pitch, event.due)
        sounding = self.model_sounding[pitch]
        sounding[1] -= 1
        if not sounding[1]:
            del self.model_sounding[pitch]

    def _tick(self, now: float) -> None:
        """The live encoder's steps become final as time passes; MIDI clock goes out."""
        if self.stream.busy or self.hold_step is not None:
            self._send_player(self.stream.advance(now), [])
        while self._sending_clock() and self.internal_clock.tick_time(self.clock_tick) <= now:
            self._send_out([CLOCK])
            self.clock_tick += 1

    def _sending_clock(self) -> bool:
        return self.settings.send_clock and self._controls.clock == ClockSource.INTERNAL

    def _start_clock_out(self) -> None:
        # Beat 0 is when the jam starts, not when the model began loading (seconds before on
        # a busy machine): else clock out would open with a burst of every tick owed since.
        self.internal_clock.origin = self.now()
        if self._sending_clock():
            self._send_out([START])
            self.clock_tick = 0

    # ---- controls, panic, ports --------------------------------------------------------------

    def _apply_controls(self, old: Controls, new: Controls) -> None:
        now = self.now()
        sampling = self._sampling(new)
        if sampling != self._sampling(old):
            self._tell(("controls", sampling))
        if new.lookahead_ms != old.lookahead_ms:
            self._tell(("controls", {"lookahead_steps": round(new.lookahead_ms / 10)}))
        if new.clock != old.clock:
            self._switch_link(new, now)
        if new.tempo_bpm != old.tempo_bpm:
            self.internal_clock.set_tempo(new.tempo_bpm, now)
            self.clock_tick = int(self.internal_clock.beat_at(now) * 24) + 1
        if new.model_channel != old.model_channel:
            self._silence_model(now)
            self.model_channel = new.model_channel
            if self.audio is not None:
                self.audio.send(("program", new.model_channel, self._program()))
        if new.mode != old.mode or new.phrase_end != old.phrase_end:
            self._panic(f"mode {new.mode}")
        if new.recording != old.recording:
            self._say("recording " + ("on" if new.recording else "paused"))
        if new.clock != old.clock and self.settings.send_clock:
            self._send_out([START] if new.clock == ClockSource.INTERNAL else [STOP])
            self.clock_tick = int(self.internal_clock.beat_at(now) * 24) + 1
        self._replan(now)

    def _switch_link(self, new: Controls, now: float) -> None:
        """Join the Link session when Link becomes the clock; leave it when it stops being."""
        if new.clock == ClockSource.LINK and self.link is None:
            self.link = link_clock.LinkClock(new.tempo_bpm, self._t0)
            self._say("Ableton Link on: joining the session on this network")
        elif new.clock != ClockSource.LINK and self.link is not None:
            self.link.close()
            self.link = None
            self._say("Ableton Link off")

    def _panic(self, why: str) -> None:
        """All notes off, everywhere; the model forgets its plans (not what it heard)."""
        now = self.now()
        self._cut(close=True, hold=False, t=now)
        self.planner.reset()
        self.sent_turn = None
        self._tell(("plan", None, None, False))
        for channel, pitch in sorted(self.passed):
            self._send_out([0x80 | channel, pitch, 0])
        self.passed.clear()
        for channel in range(16):
            self._send_out([0xB0 | channel, 64, 0])
            self._send_out([0xB0 | channel, 123, 0])
        if self.audio is not None:
            self.audio.send(("silence",))
        self._say(f"all notes off ({why})")

    def _port_change(self, which: str, change: str) -> None:
        now = self.now()
        port = self.midi_in if which == "input" else self.midi_out
        name = port.name if port is not None else which
        if change == "lost":
            self._problem(which, f"MIDI {which} {name!r} disappeared; waiting for it to return")
            self._say(f"MIDI {which} {name!r} lost")
            if which == "input":
                self._release_player(now)
            self._panic(f"{which} lost")
        else:
            self._problems.pop(which, None)
            self._say(f"MIDI {which} {name!r} is back")
            if which == "output":
                for channel in range(16):
                    self._send_out([0xB0 | channel, 123, 0])

    def _send_out(self, data: list[int]) -> None:
        if self.midi_out is not None:
            self.midi_out.send(data)

    def _record(self, track: int, t: float, data: tuple | list) -> None:
        if self.recorder is not None and self._controls.recording:
            self.recorder.add(track, t, data)

    # ---- the log, the meters ------------------------------------------------

    def _say(self, line: str) -> None:
        self._log.append(f"[{self.now():8.2f}] {line}")

    def _problem(self, key: str, line: str) -> None:
        self._problems[key] = line

    def _housekeeping(self, now: float) -> None:
        self.follower.touch(now)
        self._replan(now)
        self._guard_model_notes(now)
        self._guard_player_notes(now)
        self._count_overflows()
        if self.midi_out is not None and now - self.port_checked > PORT_CHECK:
            self.port_checked = now
            change = self.midi_out.check()
            if change:
                self._port_change("output", change)
        if self.recorder is not None:
            if self._controls.recording:
                self.recorder.mark(now)
            if self.recorder.error:
                self._problem("recorder", self.recorder.error)
            else:  # space came back: the take caught up, nothing is wrong any more
                self._problems.pop("recorder", None)
        if self.audio is not None and self.audio.problem:
            self._problem("audio", self.audio.problem)
        self._check_scheduling()
        self._stats = self._meters(now)

    def _check_scheduling(self) -> None:
        """Say so, once (the log) and for as long as it holds (the meters), when the audio
        server left the sound's threads without real-time scheduling (a JACK server started
        without it): the xruns to expect, and what to change. Not a problem in stats(): the
        sound works, and a UI shows it beside the problems."""
        audio = self.audio.latest.get("scheduling") if self.audio is not None else None
        line = realtime.scheduling_report(audio, realtime.SEEN)
        if line is not None and line != self._scheduling_said:
            self._say(line)
        self._scheduling_said = line

    def _guard_model_notes(self, now: float) -> None:
        """Belt and braces: the worker's grammar guard ends every model note in time; if the
        worker died, this does."""
        limit = self.max_note_seconds + MAX_NOTE_SLACK
        for pitch, (start, strikes) in list(self.model_sounding.items()):
            if now - start > limit * strikes:
                self._end_model_note(pitch, now)
                self._say(f"ended a model note left on ({pitch})")

    def _guard_player_notes(self, now: float) -> None:
        """The last line of defence: a key down longer than max_held_seconds has surely lost
        its note-off (in the MIDI system, below livegen), so it ends here, not never."""
        limit = self.settings.max_held_seconds
        if not limit:
            return
        for (channel, pitch), struck in list(self.accepted.items()):
            if now - struck > limit:
                self._player_note_off(channel, pitch, now)
                self._say(
                    f"ended the player's note {pitch} (channel {channel + 1}): held over "
                    f"{limit:g} s, its note-off was lost"
                )

    def _count_overflows(self) -> None:
        """rtmidi drops what does not fit its queue without a word; a drain that found the
        queue full is the only sign, so it is counted and said."""
        overflows = self.midi_in.overflows if self.midi_in is not None else 0
        if overflows > self.input_overflows:
            self.input_overflows = overflows
            self._say(
                f"MIDI input overflowed ({overflows}x): the MIDI system may have dropped "
                "messages before livegen saw them"
            )

    def _meters(self, now: float) -> Stats:
        w, audio = self.worker_stats, (self.audio.latest if self.audio is not None else {})
        counters = self.counters
        while self.input_ms and self.input_ms[0][0] < now - 2.0:  # the last two seconds
            self.input_ms.popleft()
        inputs = sorted(ms for _, ms in self.input_ms)
        clock = self._beat_clock()
        following = self._controls.clock == ClockSource.MIDI
        tempo = self.follower.tempo_bpm if following else clock.tempo_bpm
        link = self.link if clock is self.link else None
        turn = self.sent_turn
        speaking = bool(self.model_sounding) or (turn is not None and turn.start <= now < turn.end)
        problems = list(self._problems.values())
        if following and not self.follower.valid:
            problems.append("following MIDI clock, but no clock is coming in")
        return Stats(
            running=self._running,
            tokens_per_s=w.get("tokens_per_s", 0.0),
            ms_per_token_p50=w.get("ms_per_token_p50", 0.0),
            ms_per_token_p99=w.get("ms_per_token_p99", 0.0),
            lookahead_ms=max(0.0, w.get("ahead_steps", 0.0) * 10.0),
            reaction_ms=counters["reaction_ms"],
            input_to_context_ms=inputs[len(inputs) // 2] if inputs else 0.0,
            xruns=audio.get("xruns", 0),
            late_events=counters["late"],
            dropped_messages=self._dropped + self.gate.dropped,
            input_overflows=self.input_overflows,
            cpu_percent=self._cpu_percent(w, audio),
            tempo_bpm=tempo,
            beat=int(clock.beat_at(now)) if clock.valid else None,
            link_peers=link.peers if link is not None else None,
            link_phase=link.phase if link is not None else None,
            recording_path=self.recording_path if self._controls.recording else None,
            recording_seconds=self.recorder.seconds if self.recorder is not None else 0.0,
            model_speaking=speaking,
            problems=problems,
            scheduling=self._scheduling_said,
        )

    def _cpu_percent(self, worker: dict, audio: dict) -> float:
        wall = time.perf_counter()
        worker_cpu = worker.get("cpu_s", 0.0) if self.worker_mode == "process" else 0.0
        cpu = time.process_time() + worker_cpu + audio.get("cpu_s", 0.0)
        then, before = self.cpu_mark
        if wall - then < 0.5:
            return self._stats.cpu_percent
        self.cpu_mark = (wall, cpu)
        return max(0.0, 100.0 * (cpu - before) / (wall - then)) if before else 0.0

    def _shutdown(self) -> None:
        """Last words: the model's notes off, the player's passthrough off, clock stop."""
        self._panic("stop")
        if self._sending_clock():
            self._send_out([STOP])
        self._running = False
        self._stats = dataclasses.replace(self._meters(self.now()), running=False)
