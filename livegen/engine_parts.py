"""The engine's parts: opening them (ports, recorder, sound, the decode worker), closing them,
and watching them (housekeeping, meters, a lost or swapped worker).

A mixin of JamEngine (livegen/engine.py), which keeps the conductor: it uses the engine's
public names only.
"""

from __future__ import annotations

import os
import time

from livegen import realtime
from livegen.controls import Controls
from livegen.engine_meters import Meters, Readings
from livegen.kernels.errors import LivegenError
from livegen.kernels.midi_codes import PROGRAM_CHANGE_STATUS
from livegen.kernels.time_steps import ms_to_steps
from livegen.messages import CancelAfter, ContextDump, ResetCounters, Sampling, WorkerStats
from livegen.recorder import MODEL_TRACK
from livegen.session_clock import SessionClock
from livegen.worker_swap import WorkerSwap

PORT_CHECK = 0.5  # seconds between checks that the output port is still there
_CLOSE_ORDER = (  # the parts the engine opens: (attribute, method that ends it)
    ("clock_in", "close"),
    ("midi_in", "close"),
    ("worker", "stop"),
    ("audio", "stop"),
    ("midi_out", "close"),
    ("recorder", "close"),
)


class EngineError(LivegenError):
    """The engine cannot start as configured."""


class PartsMixin:
    HOUSEKEEPING = 0.05  # seconds between meter updates, turn checks and port checks
    meters: Meters | None = None
    clock: SessionClock | None = None
    swap: WorkerSwap | None = None
    generation = 0  # which decode worker the engine talks to (a preset swap makes a new one)
    swaps = 0  # preset swaps asked for
    swap_seconds: float | None = None  # the last preset swap: request -> the new model's turn
    rings = None  # an audio preset's shared rings (livegen/audio_rings.py); None: a MIDI model
    onsets_heard = 0  # an audio model's turns whose first sound went out, seen so far
    input_sounding = False  # --audio-in: the player's sound is on
    audio_in = None  # what --audio-in names: an AudioInPort or AudioInDevice (livegen/audio_out.py)

    def open_parts(self) -> None:
        from livegen.audio_jam import (
            check_audio_in,
            is_audio_preset,
            load_audio_jam_preset,
            make_rings,
            refuse_midi_preset_for_audio_in,
        )
        from livegen.midi_ports import VIRTUAL_CLOCK, MidiInput, MidiOutput, MidiUnavailable
        from livegen.models.checkpoint import load_config
        from livegen.models.preset import load_preset

        settings = self.settings
        if is_audio_preset(settings.preset):
            self.preset = load_audio_jam_preset(settings.preset)  # codec checked too
            if settings.audio_in:  # a JACK port that exists, or (no JACK) an input device
                self.audio_in = check_audio_in(settings.audio_in)
            self.rings = make_rings(self.preset, settings)
        else:
            if settings.audio_in:
                refuse_midi_preset_for_audio_in(settings.preset)
            self.preset = load_preset(settings.preset)  # PresetError names what exists
            load_config(self.preset.model_dir)  # a broken model folder fails here, clearly
        self.t0 = time.perf_counter()
        self.meters = Meters()
        self.clock = SessionClock(
            self.controls, self.t0, settings.send_clock, self.fanout.send, self.say
        )
        self.init_state()
        self.port_checked = 0.0
        self.input_overflows = 0
        self.scheduling_said: str | None = None  # the last line on real-time scheduling
        if settings.output != "none":
            self.midi_out = MidiOutput(settings.output, settings.api)
            try:
                self.midi_out.open()
            except MidiUnavailable as error:
                self.problems["midi"] = f"no MIDI: {error}"
                self.midi_out = None
        self.fanout.midi_out = self.midi_out
        self._check_input_names()
        self._open_recorder()
        # The model loads (seconds) while the audio process starts: both at once.
        worker = self._launch_worker()
        self._open_audio()
        ready = worker.wait_ready()
        self.say(f"model: {self.preset.name} on {ready.device}")
        if self.audio is not None:
            self.audio.send(ResetCounters())
        # Input opens last: once its port exists, everything that hears it is ready.
        if settings.input != "none" and "midi" not in self.problems:
            self.midi_in = MidiInput(
                settings.input, self.on_midi, settings.api, on_change=self.on_input_change
            )
            try:
                self.midi_in.open()
            except MidiUnavailable as error:
                self.problems["midi"] = f"no MIDI: {error}"
                self.midi_in = None
        if settings.clock_in and "midi" not in self.problems:
            self.clock_in = MidiInput(settings.clock_in, self.on_midi, settings.api)
            self.clock_in.virtual_name = VIRTUAL_CLOCK
            self.clock_in.open()

    def _check_input_names(self) -> None:
        from livegen.midi_ports import MidiUnavailable, list_ports, resolve_port

        settings = self.settings
        inputs = [settings.input] if settings.input not in ("none", "virtual") else []
        for name in [*inputs, *([settings.clock_in] if settings.clock_in else [])]:
            try:  # a wrong name fails now, not after the model has loaded
                resolve_port(name, list_ports(settings.api, "in"), "MIDI input")
            except MidiUnavailable as error:
                self.problems["midi"] = f"no MIDI: {error}"

    def _open_recorder(self) -> None:
        from livegen.recorder import Recorder, session_path

        if not self.settings.record_dir:
            return
        path = session_path(self.settings.record_dir)
        self.recorder = Recorder(path, tempo_bpm=self.controls.tempo_bpm)
        self.recorder.start()
        self.fanout.recorder = self.recorder
        self.recording_path = str(path)
        channel = self.controls.model_channel
        self.recorder.add(MODEL_TRACK, 0.0, [PROGRAM_CHANGE_STATUS | channel, self.program()])
        self.say(f"recording to {path}")

    def program(self) -> int:
        program = self.settings.program
        return self.preset.sound.program if program is None else program

    def _open_audio(self) -> None:
        from livegen.audio_out import AudioInDevice, AudioOut, AudioSpec

        settings = self.settings
        if settings.audio_device == "none":
            self.say("sound: off (--audio-device none)")
            return
        wav = None
        # An audio model's part exists only as sound: its takes always keep the WAV.
        if (settings.record_wav or self.rings is not None) and self.recording_path:
            wav = str(os.path.splitext(self.recording_path)[0] + ".wav")
        spec = AudioSpec(
            t0=self.t0,
            soundfont=settings.soundfont or self.preset.sound.soundfont,
            device=settings.audio_device,
            sample_rate=settings.sample_rate,
            blocksize=settings.blocksize,
            programs={self.controls.model_channel: self.program()},
            wav_path=wav,
            voice=self.rings.layout if self.rings is not None else None,
            audio_in=self.audio_in,
        )
        self.audio = AudioOut(spec)
        self.audio.launch()
        problem = self.audio.wait_ready()
        if problem and isinstance(self.audio_in, AudioInDevice):
            from livegen.audio_jam import AudioJamError

            self.audio = None  # the input device asked for cannot be heard: say so, jam not
            raise AudioJamError(problem)
        if problem:
            self.audio = None
            self.problems["audio"] = problem + "; MIDI out and recording go on"
        else:
            self.fanout.audio = self.audio
            self.say(f"sound: {self.audio.ready.device}")

    def worker_spec(self, preset_source: str):  # noqa: ANN201 - a decode_worker.WorkerSpec
        from livegen.decode_worker import WorkerSpec

        c, seed = self.controls, self.settings.seed
        return WorkerSpec(
            preset=preset_source,
            t0=self.t0,
            device=self.settings.device,
            seed=seed if seed is not None else 0,
            lookahead_steps=ms_to_steps(c.lookahead_ms),
            sampling=self.sampling(c),
            follow_rhythm=self.settings.follow_rhythm,
        )

    def _launch_worker(self):  # noqa: ANN202
        from livegen.decode_worker import DecodeWorker

        if self.rings is not None:
            from livegen.audio_jam import audio_worker_spec
            from livegen.audio_worker import AudioWorker

            spec = audio_worker_spec(self, self.rings)
            self.worker = AudioWorker(spec, self.worker_messages(0), mode=self.worker_mode)
            self.worker.launch()
            return self.worker
        spec = self.worker_spec(str(self.preset.source))
        self.worker = DecodeWorker(spec, self.worker_messages(0), mode=self.worker_mode)
        self.worker.launch()
        return self.worker

    @staticmethod
    def sampling(c: Controls) -> Sampling:
        return Sampling(c.temperature, c.top_p, c.low_pitch, c.high_pitch, c.density)

    def close_parts(self) -> None:
        # Inputs first (nothing new arrives), the recorder last (it hears everything sent).
        if self.swap is not None:
            self.swap.abandon()
        if self.clock is not None:
            self.clock.close()
        for name, ending in _CLOSE_ORDER:
            part = getattr(self, name)
            if part is not None:
                getattr(part, ending)()
                setattr(self, name, None)
        self.fanout.midi_out = self.fanout.audio = self.fanout.recorder = None
        if self.rings is not None:  # both its users are gone now
            self.rings.close()
            self.rings = None

    # ---- the worker --------------------------------------------------------------------------

    def worker_said(self, stats: WorkerStats) -> None:
        now = self.now()
        self.meters.worker_said(stats, now)
        if self.measured is not None:
            self.measured["input_ms"] += stats.input_ms
            self.measured.setdefault("transit_ms", []).extend(stats.transit_ms)
            self.measured["ms_per_token"].append(stats.ms_per_token_p50)

    def worker_messages(self, generation: int):  # noqa: ANN201
        """The callback a decode worker's reader thread gives its messages to: they reach the
        conductor while that worker is the one the engine talks to (its context, always)."""

        def deliver(message: object) -> None:
            if generation == self.generation or isinstance(message, ContextDump):
                self.deliver(message)

        return deliver

    def swap_worker(self, name: str) -> None:
        """Start loading another preset beside the playing one (livegen/worker_swap.py)."""
        if self.swap is not None and self.swap.busy:
            self.say(f"preset {self.swap.name!r} is still on its way; {name!r} not started")
            return
        if self.rings is not None:
            self.say(f"an audio model plays: a live swap to {name!r} is not built; restart")
            return
        self.swaps += 1  # a generation of its own, even if an earlier swap failed
        self.swap = WorkerSwap(self, name, self.swaps)
        self.swap.begin()

    def use_worker(self, worker, generation: int, preset) -> None:  # noqa: ANN001
        """From now on the engine talks to `worker` (a preset swap, at a turn boundary)."""
        now = self.now()
        self.output.cut()  # notes still in flight from the old worker are dropped
        self.output.scheduler.last_sent = 0  # the new worker numbers its notes from 1
        self.fanout.synth(CancelAfter(now))
        self.output.silence(now)
        self.worker, self.generation, self.preset = worker, generation, preset
        self.output.max_note_seconds = preset.sampling.max_note_seconds
        self.problems.pop("worker", None)

    def worker_lost(self, reason: str) -> None:
        self.problems["worker"] = f"the model stopped: {reason.strip().splitlines()[-1]}"
        self.meters.worker_gone()
        self.say(reason)
        self.output.silence(self.now())

    # ---- housekeeping ------------------------------------------------------------------------

    def housekeeping(self, now: float) -> None:
        self.clock.follower.touch(now)
        self.turns.replan(now)
        self.output.guard(now)
        self._guard_player_notes(now)
        self._count_overflows()
        if self.swap is not None:
            self.swap.at_boundary(now)
        if self.midi_out is not None and now - self.port_checked > PORT_CHECK:
            self.port_checked = now
            change = self.midi_out.check()
            if change:
                self.port_change("output", change)
        if self.recorder is not None:
            if self.controls.recording:
                self.recorder.mark(now)
            if self.recorder.error:
                self.problems["recorder"] = self.recorder.error
            else:  # space came back: the take caught up, nothing is wrong any more
                self.problems.pop("recorder", None)
        if self.audio is not None:
            self.meters.audio = self.audio.latest
            if self.audio.problem:
                self.problems["audio"] = self.audio.problem
            if self.rings is not None and self.audio.latest is not None:
                self._model_heard(self.audio.latest)
        if self.rings is not None and self.settings.audio_in:
            self._input_sounding(now)
        self._check_scheduling()

    def _check_scheduling(self) -> None:
        """Say so, once (the log) and for as long as it holds (the meters), when the audio
        server left the sound's threads without real-time scheduling (a JACK server started
        without it): the xruns to expect, and what to change. Not a problem in stats(): the
        sound works, and a UI shows it beside the problems."""
        latest = self.audio.latest if self.audio is not None else None
        line = realtime.scheduling_report(latest.scheduling if latest else None, realtime.SEEN)
        if line is not None and line != self.scheduling_said:
            self.say(line)
        self.scheduling_said = line

    def _input_sounding(self, now: float) -> None:
        """--audio-in: the player sounds while the input was loud within the last 100 ms
        (checked every housekeeping, 50 ms); a change is a turn's cue (TurnTaking.sound)."""
        loud_at = self.rings.input_loud_at
        sounding = loud_at is not None and now - loud_at < 0.1
        if sounding != self.input_sounding:
            self.input_sounding = sounding
            self.turns.sound(sounding, loud_at if not sounding else now)

    def _model_heard(self, stats) -> None:  # noqa: ANN001 - messages.AudioStats
        """An audio model's turn began to sound (the callback says when): the reaction, from
        the phrase end the turn answers, as the first note's is for a MIDI model."""
        if stats.model_onsets <= self.onsets_heard or stats.model_onset is None:
            return
        self.onsets_heard = stats.model_onsets
        awaiting = self.output.awaiting
        if awaiting is None:
            return
        decided, end = awaiting
        self.output.reaction_ms = max(0.0, stats.model_onset - decided) * 1e3
        self.say(f"model's turn until {end:.2f} s (reaction {self.output.reaction_ms:.1f} ms)")
        if self.measured is not None:
            self.measured["reaction_ms"].append(self.output.reaction_ms)
        self.output.awaiting = None

    def _guard_player_notes(self, now: float) -> None:
        """The last line of defence: a key down longer than max_held_seconds has surely lost
        its note-off (in the MIDI system, below livegen), so it ends here, not never."""
        limit = self.settings.max_held_seconds
        for channel, pitch in self.keys.overdue(now, limit):
            self.keys.note_off(channel, pitch, now)
            self.say(
                f"ended the player's note {pitch} (channel {channel + 1}): held over "
                f"{limit:g} s, its note-off was lost"
            )

    def _count_overflows(self) -> None:
        """rtmidi drops what does not fit its queue without a word; a drain that found the
        queue full is the only sign, so it is counted and said."""
        overflows = self.midi_in.overflows if self.midi_in is not None else 0
        if overflows > self.input_overflows:
            self.input_overflows = overflows
            self.say(
                f"MIDI input overflowed ({overflows}x): the MIDI system may have dropped "
                "messages before livegen saw them"
            )

    def meter(self, now: float):  # noqa: ANN201 - controls.Stats
        output = self.output
        problems = list(self.problems.values())
        readings = Readings(
            running=self.running,
            controls=self.controls,
            clock=self.clock,
            late=output.late,
            reaction_ms=output.reaction_ms,
            dropped=self.dropped_messages,
            input_overflows=self.input_overflows,
            model_speaking=self.turns.speaking(now),
            recording_path=self.recording_path,
            recording_seconds=self.recorder.seconds if self.recorder is not None else 0.0,
            problems=problems,
            scheduling=self.scheduling_said,
            process_worker=self.worker_mode == "process",
        )
        stats = self.meters.stats(now, readings)
        stats.preset = self.preset.name
        stats.preset_swap_seconds = self.swap_seconds
        if self.swap is not None and self.swap.busy:
            stats.preset_swap = f"{self.swap.state} {self.swap.name}"
        return stats
