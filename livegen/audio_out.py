"""Sound: FluidSynth in a sounddevice output stream, in a process of its own.

Why a process: a 128-frame block at 48 kHz is 2.7 ms, and the callback is Python. In the
engine's process it would wait for the GIL behind the terminal UI, the MIDI threads and (in
thread mode) the model. Here it shares its GIL with one reader thread, which only appends to a
deque. PortAudio is also never initialised in the engine's process, so a JACK server that goes
away cannot abort it.

Timing: the engine sends timestamped events (session seconds) ahead of time: the model's as
soon as they are generated, the player's as they arrive. The callback maps session time to its
sample frame (`anchor`: the session time of frame 0, from the least-delayed callback seen) and
adds a fixed latency of `latency_frames`, so every event sounds at its exact frame, at the same
delay, whatever the block size; FluidSynthRenderer splits the block at each event's frame.
The callback never waits: no locks, no allocation beyond a few small tuples.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from livegen import realtime
from livegen.audio_devices import pick_device
from livegen.audio_rings import RingLayout
from livegen.child import Child
from livegen.messages import (
    AudioReady,
    AudioStats,
    CancelAfter,
    Failed,
    ResetCounters,
    SetProgram,
    Silence,
    Stop,
    Stopped,
    SynthControl,
    SynthNote,
)
from livegen.model_voice import ModelVoice
from livegen.synth import FluidSynthRenderer, SynthEvent
from livegen.wav_ring import WavRing

STATS_INTERVAL = 0.25
GIL_HOLDER_PRIORITY = 10  # SCHED_FIFO: above every ordinary thread, below JACK's (60-70)


@dataclass(frozen=True)
class AudioInPort:
    """--audio-in names a JACK port that sends audio: the duplex stream's input is wired to
    it once the stream runs."""

    name: str


@dataclass(frozen=True)
class AudioInDevice:
    """--audio-in names an input device of the sound card (no JACK server about), picked by
    name as --audio-device picks outputs."""

    name: str


@dataclass
class AudioSpec:
    t0: float  # session clock origin (time.perf_counter seconds)
    soundfont: str
    device: str | None = None  # sounddevice name (exact or substring) or index; None: default
    sample_rate: int = 48000
    blocksize: int = 128
    programs: dict[int, int] = field(default_factory=dict)  # channel -> GM program
    latency_blocks: int = 1  # fixed delay added to every event, in blocks
    wav_path: str | None = None
    gain: float = 0.6
    voice: RingLayout | None = None  # an audio model's rings (livegen/model_voice.py)
    audio_in: AudioInPort | AudioInDevice | None = None  # heard (and recorded) beside the output


# ---- the callback side (runs in the audio process; tests drive it directly) -----------------


class CallbackRenderer:
    """Renders blocks from timestamped events; `callback` is sounddevice's stream callback."""

    def __init__(
        self,
        spec: AudioSpec,
        clock=time.perf_counter,  # noqa: ANN001
        *,
        realtime_thread: bool = False,
    ) -> None:
        """`realtime_thread`: make the thread that calls `callback` real-time at its first
        block (the audio process does; a test driving the callback from its own thread not)."""
        self.spec = spec
        self.clock = clock
        self.synth = FluidSynthRenderer(spec.soundfont, spec.sample_rate, gain=spec.gain)
        # A soundfont loads without assigning presets: give every channel one (GM piano,
        # drums on channel 10) or the player's channel stays silent.
        for channel, program in {**dict.fromkeys(range(16), 0), **spec.programs}.items():
            self.synth.set_program(channel, program)
        self.sr = spec.sample_rate
        self.latency_frames = spec.latency_blocks * spec.blocksize
        self.inbox: deque[object] = deque()  # messages.Synth*, CancelAfter, ...
        self._pending: list[
            tuple
        ] = []  # heap: (frame, order, seq, control, channel, a, b, cancellable, t)
        self._seq = 0
        self.anchor: float | None = None
        self._window_min = self._previous_min = float("inf")
        self._window_blocks = 0
        self._window_size = max(1, round(0.25 * spec.sample_rate / spec.blocksize))
        self.xruns = 0
        self.late = 0  # events whose frame had already been rendered when they arrived
        self.max_callback_ms = 0.0
        self.slow_callbacks = 0  # callbacks that took longer than their block lasts
        # Longest time between two callbacks' starts: a block lasts 2.7 ms at 128 / 48 kHz; a
        # gap far beyond that with short callbacks means the callback was started late (the
        # scheduler, the GIL), not that it ran long.
        self.max_gap_ms = 0.0
        self._last_start = 0.0
        self.recorder: WavRing | None = None
        # The callback thread's scheduling, seen at its first block: "server" (the audio
        # server runs it real-time), "livegen" (the server did not; livegen made it so),
        # "ordinary" (neither could: any busy thread on the machine can make it late).
        self.scheduling: str | None = None if realtime_thread else "not asked"
        self.voice = ModelVoice(spec.voice, self.latency_frames) if spec.voice else None
        self.input: np.ndarray | None = None  # --audio-in: this block's input [frames, 1]
        self.mixed = np.zeros((8192, 2), np.float32)  # the output and the input: heard

    def _follow(self, estimate: float) -> None:
        """The anchor: the least-delayed callback's (session time - frame time) over the last
        0.25-0.5 s. Late callbacks only ever look later, so the minimum ignores them; the
        window lets the anchor follow a jump (an xrun that skipped frames) within 0.5 s."""
        if estimate < self._window_min:
            self._window_min = estimate
        self._window_blocks += 1
        if self._window_blocks >= self._window_size:
            self._previous_min, self._window_min = self._window_min, float("inf")
            self._window_blocks = 0
        self.anchor = min(self._previous_min, self._window_min)

    def frame_of(self, t: float) -> int:
        return round((t - self.anchor) * self.sr) + self.latency_frames

    def callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        start = self.clock()
        if self.scheduling is None:  # the first block: make this thread real-time
            self.scheduling = realtime.schedule()
        if self._last_start:
            self.max_gap_ms = max(self.max_gap_ms, (start - self._last_start) * 1e3)
        self._last_start = start
        if status and status.output_underflow:  # PortAudio's JACK host API: JACK saw an xrun
            self.xruns += 1
        block_start = self.synth.frame
        self._follow(start - self.spec.t0 - block_start / self.sr)
        self._take_inbox(block_start)
        self._render(outdata, frames, block_start)
        if self.voice is not None:
            self.voice.set_anchor(self.anchor)
            self.voice.mix(outdata, block_start, start - self.spec.t0)
        heard = outdata
        if self.input is not None:  # heard and recorded, not played (no feedback)
            heard = self.mixed[:frames]
            np.add(outdata, self.input[:frames, :1], out=heard)
            if self.voice is not None:
                self.voice.rings.input_heard(self.input[:frames], start - self.spec.t0)
        if self.voice is not None:
            self.voice.heard(heard, block_start)
        if self.recorder is not None:
            self.recorder.write(heard)
        spent = (self.clock() - start) * 1e3
        self.max_callback_ms = max(self.max_callback_ms, spent)
        if spent * self.sr > frames * 1e3:
            self.slow_callbacks += 1

    def duplex(self, indata, outdata, frames, time_info, status) -> None:  # noqa: ANN001
        """A duplex stream's callback (--audio-in): the input is heard with the output."""
        self.input = indata
        self.callback(outdata, frames, time_info, status)

    def _take_inbox(self, block_start: int) -> None:
        inbox, pending = self.inbox, self._pending
        while inbox:
            message = inbox.popleft()
            match message:
                case SynthNote(t, channel, pitch, velocity, cancellable):
                    self._queue(t, channel, pitch, velocity, cancellable, False, block_start)
                case SynthControl(t, channel, number, value):
                    self._queue(t, channel, number, value, False, True, block_start)
                case CancelAfter(after, epoch):  # drop the model's events after `after`
                    kept = [e for e in pending if not (e[7] and e[8] > after)]
                    heapq.heapify(kept)
                    self._pending = pending = kept
                    if self.voice is not None:
                        self.voice.cut(max(self.frame_of(after), block_start), epoch)
                case Silence():  # panic: drop everything pending, stop every voice
                    pending.clear()
                    self.synth.silence()
                case SetProgram(channel, program):
                    self.synth.set_program(channel, program)
                case ResetCounters():  # the jam begins: loading's hiccups do not count
                    self.xruns = self.late = self.slow_callbacks = 0
                    if self.voice is not None:
                        self.voice.late_frames = 0
                    self.max_callback_ms = self.max_gap_ms = 0.0

    def _queue(self, t, channel, a, b, cancellable, control, block_start) -> None:  # noqa: ANN001
        frame = self.frame_of(t)
        self.late += frame < block_start
        self._seq += 1
        order = 1 if (control or b > 0) else 0  # offs first at one frame
        entry = (frame, order, self._seq, control, channel, a, b, cancellable, t)
        heapq.heappush(self._pending, entry)

    def _render(self, outdata: np.ndarray, frames: int, block_start: int) -> None:
        end, pending, events = block_start + frames, self._pending, []
        while pending and pending[0][0] < end:
            frame, order, _, control, channel, a, b, _, _ = heapq.heappop(pending)
            events.append(SynthEvent(frame, order, channel, a, b, controller=control))
        self.synth.render_into(outdata, events)

    def stats(self) -> AudioStats:
        voice = self.voice
        model = {}
        if voice is not None:
            model = {
                "model_frames": voice.frames_played,
                "model_late_frames": voice.late_frames,
                "model_onsets": voice.onsets,
                "model_onset": voice.last_onset,
            }
        return AudioStats(
            **model,
            xruns=self.xruns,
            late=self.late,
            max_callback_ms=self.max_callback_ms,
            slow_callbacks=self.slow_callbacks,
            max_gap_ms=self.max_gap_ms,
            cpu_s=time.process_time(),
            scheduling=self.scheduling,
        )


# ---- the audio process -------------------------------------------------------------------


NO_SOUND_HINT = (
    "MIDI out and recording go on. For sound: plug in or enable a sound card, or start a JACK "
    "server (jackd -d alsa, or -d dummy to test), then pick the device with --audio-device "
    "(livegen ports lists them)"
)


def _raise_priority() -> None:
    """Make this (the main) thread SCHED_FIFO, below JACK's clients, where allowed.

    The callback runs in PortAudio's real-time thread but needs the GIL, which this thread
    takes for a few microseconds per message from the engine. If the scheduler preempts this
    thread in those microseconds (on 2 cores the model, the conductor and the UI compete),
    the callback waits for the GIL behind it: a late block, an xrun. A real-time policy keeps
    it from being preempted by ordinary work. Allowed to root and to users with an rtprio
    limit (the audio group of a JACK set-up); elsewhere it stays as it is."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(GIL_HOLDER_PRIORITY))


def _open_stream(sd, spec: AudioSpec, renderer: CallbackRenderer, device: int | None):  # noqa: ANN001, ANN202
    """The output stream; with --audio-in a duplex one (mono in): on the input device it
    names, or for a JACK port with the JACK input ports that were there before it
    (livegen/jack_ports.py finds its own among the new)."""
    common = {"samplerate": spec.sample_rate, "blocksize": spec.blocksize, "dtype": "float32"}
    if not spec.audio_in:
        stream = sd.OutputStream(
            device=device, channels=2, latency="low", callback=renderer.callback, **common
        )
        return stream, set()
    before: set[str] = set()
    source = None  # a JACK port is wired to the default input once the stream runs
    if isinstance(spec.audio_in, AudioInPort):
        from livegen.jack_ports import audio_ports

        before = set(audio_ports("input") or [])
    else:
        source = pick_device(sd, spec.audio_in.name, "input")
    stream = sd.Stream(
        device=(source, device), channels=(1, 2), latency="low", callback=renderer.duplex, **common
    )
    return stream, before


def _audio_process(conn, spec: AudioSpec) -> None:  # noqa: ANN001
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stream = renderer = None
    try:
        import sounddevice as sd

        renderer = CallbackRenderer(spec, realtime_thread=True)
        if spec.wav_path:
            renderer.recorder = WavRing(spec.wav_path, spec.sample_rate)
            renderer.recorder.start()
        stream, inputs = _open_stream(sd, spec, renderer, pick_device(sd, spec.device))
        # Everything loaded so far lives as long as the process: out of the collector's sight.
        # A full collection over it took ~4 ms, longer than a 128-frame block, and it runs in
        # whichever thread allocates, the callback included (1 xrun a minute in bench_jam).
        # Collected and frozen before the stream starts: a collection holds the GIL the
        # running callback needs.
        gc.collect()
        gc.freeze()
        _raise_priority()
        stream.start()
        if isinstance(spec.audio_in, AudioInPort):
            from livegen.jack_ports import wire_input

            wire_input(spec.audio_in.name, inputs)
        info = sd.query_devices(stream.device[1] if spec.audio_in else stream.device)
        api = sd.query_hostapis(info["hostapi"])["name"]
        latency = stream.latency[1] if spec.audio_in else stream.latency
        conn.send(AudioReady(f"{info['name']} ({api})", float(latency)))
    except Exception as error:  # no PortAudio, no device, no soundfont: a problem, not a crash
        why = f"{type(error).__name__}: {error}"
        if isinstance(spec.audio_in, AudioInDevice):  # the input asked for: the jam cannot go on
            conn.send(Failed(f"--audio-in {spec.audio_in.name!r}: {why}"))
        else:
            conn.send(Failed(f"no sound: {why}. {NO_SOUND_HINT}"))
        if stream is not None:  # started, then wiring failed: the callback ends here
            with contextlib.suppress(Exception):
                stream.close()
        stream = None
    parent = os.getppid()
    try:
        next_stats = time.monotonic() + STATS_INTERVAL
        while True:
            if os.getppid() != parent:  # the engine died without a word: do not outlive it
                break
            if conn.poll(max(0.0, next_stats - time.monotonic())):
                message = conn.recv()
                if isinstance(message, Stop):
                    break
                if renderer is not None and stream is not None:
                    renderer.inbox.append(message)
            if time.monotonic() >= next_stats:
                next_stats += STATS_INTERVAL
                if renderer is not None and stream is not None:
                    conn.send(renderer.stats())
    except (EOFError, OSError):
        pass
    finally:
        if stream is not None:
            stream.stop()
            stream.close()
        if renderer is not None and renderer.recorder is not None:
            renderer.recorder.close()
        if renderer is not None and renderer.voice is not None:
            renderer.voice.close()
        if stream is not None:
            try:
                conn.send(renderer.stats())
                conn.send(Stopped())
            except OSError:
                pass


class AudioOut:
    """The engine's handle on the audio process."""

    def __init__(self, spec: AudioSpec) -> None:
        self.spec = spec
        self.problem: str | None = None
        self.ready: AudioReady | None = None
        self.latest: AudioStats | None = None  # its last stats (None before the first)
        self._child = Child(_audio_process, (spec,), "livegen-audio")

    def launch(self) -> None:
        """Start the audio process (returns at once; wait_ready waits)."""
        self._child.launch()

    def wait_ready(self, timeout: float = 20.0) -> str | None:
        """Wait for the stream; returns None, or a line saying why there is no sound."""
        try:
            first = self._child.first(timeout)
        except EOFError:  # it died before a word: no sound, the jam goes on
            first = Failed("no sound: the audio process exited while starting")
        match first:
            case None:
                self.problem = "no sound: the audio process did not start"
            case AudioReady():
                self.ready = first
            case Failed(reason):
                self.problem = reason
        if self.problem:
            self.stop()
            return self.problem
        self._child.read(self._on_message, on_end=self._died)
        return None

    def _died(self) -> None:  # the pipe closed without Stopped: noticed in silence too
        self.problem = "no sound: the audio process died"

    def _on_message(self, message: object) -> bool:
        if isinstance(message, AudioStats):
            self.latest = message
        return not isinstance(message, Stopped)  # its last words: the final stats came before

    def send(self, message: object) -> None:
        if not self._child.send(message) and self._child.started:
            self.problem = "no sound: the audio process died"

    def note(
        self, t: float, channel: int, pitch: int, velocity: int, *, cancellable: bool = False
    ) -> None:
        """A note-on (velocity 0: off) at session time `t`. Cancellable notes are the model's
        ahead of time: a CancelAfter drops those after its time."""
        self.send(SynthNote(t, channel, pitch, velocity, cancellable))

    def control(self, t: float, channel: int, number: int, value: int) -> None:
        self.send(SynthControl(t, channel, number, value))

    def stop(self) -> None:
        self._child.stop()
