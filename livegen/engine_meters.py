"""The engine's meters: what stats() reports, from the parts' own figures (the worker's and the
audio process' stats messages, the model output's counters, the clocks). Built a few times a
second on the conductor thread; stats() hands out the latest."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from livegen.controls import ClockSource, Controls, Stats
from livegen.messages import AudioStats, WorkerStats
from livegen.session_clock import SessionClock

INPUT_WINDOW = 2.0  # seconds of input timings the median is over


@dataclass
class Readings:
    """What the meters read from the engine's parts at one moment."""

    running: bool
    controls: Controls
    clock: SessionClock
    late: int
    reaction_ms: float
    dropped: int
    input_overflows: int
    model_speaking: bool
    recording_path: str | None
    recording_seconds: float
    problems: list[str]
    scheduling: str | None
    process_worker: bool  # the worker's CPU time counts (a process of its own)


class Meters:
    def __init__(self) -> None:
        self.worker = WorkerStats()  # the worker's latest
        self.audio: AudioStats | None = None  # the audio process' latest
        self.input_ms: deque[tuple[float, float]] = deque(maxlen=256)  # (when, ms)
        self.cpu_mark = (time.perf_counter(), 0.0)
        self.cpu_percent = 0.0

    def worker_said(self, stats: WorkerStats, now: float) -> None:
        self.worker = stats
        self.input_ms.extend((now, ms) for ms in stats.input_ms)

    def worker_gone(self) -> None:
        self.worker = WorkerStats()  # its meters (tokens/s...) stopped with it

    def stats(self, now: float, r: Readings) -> Stats:
        w, audio = self.worker, self.audio or AudioStats()
        while self.input_ms and self.input_ms[0][0] < now - INPUT_WINDOW:
            self.input_ms.popleft()
        inputs = sorted(ms for _, ms in self.input_ms)
        clock = r.clock.beat_clock(now)
        following = r.controls.clock == ClockSource.MIDI
        tempo = r.clock.follower.tempo_bpm if following else clock.tempo_bpm
        link = r.clock.link if clock is r.clock.link else None
        problems = list(r.problems)
        if following and not r.clock.follower.valid:
            problems.append("following MIDI clock, but no clock is coming in")
        return Stats(
            running=r.running,
            tokens_per_s=w.tokens_per_s,
            ms_per_token_p50=w.ms_per_token_p50,
            ms_per_token_p99=w.ms_per_token_p99,
            lookahead_ms=max(0.0, w.ahead_steps * 10.0),
            reaction_ms=r.reaction_ms,
            input_to_context_ms=inputs[len(inputs) // 2] if inputs else 0.0,
            xruns=audio.xruns,
            late_events=r.late,
            dropped_messages=r.dropped,
            input_overflows=r.input_overflows,
            cpu_percent=self._cpu_percent(w.cpu_s if r.process_worker else 0.0, audio.cpu_s),
            tempo_bpm=tempo,
            beat=int(clock.beat_at(now)) if clock.valid else None,
            link_peers=link.peers if link is not None else None,
            link_phase=link.phase if link is not None else None,
            recording_path=r.recording_path if r.controls.recording else None,
            recording_seconds=r.recording_seconds,
            model_speaking=r.model_speaking,
            problems=problems,
            scheduling=r.scheduling,
            frames_ahead=w.frames_ahead if w.realtime_factor is not None else None,
            late_frames=max(w.late_frames, audio.model_late_frames),
            realtime_factor=w.realtime_factor,
        )

    def _cpu_percent(self, worker_cpu: float, audio_cpu: float) -> float:
        wall = time.perf_counter()
        cpu = time.process_time() + worker_cpu + audio_cpu
        then, before = self.cpu_mark
        if wall - then < 0.5:
            return self.cpu_percent
        self.cpu_mark = (wall, cpu)
        self.cpu_percent = max(0.0, 100.0 * (cpu - before) / (wall - then)) if before else 0.0
        return self.cpu_percent
