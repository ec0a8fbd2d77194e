"""The audio model's worker: a Perceiver AR over codec tokens, live (an audio preset's jam).

It takes the decode worker's place (livegen/decode_worker.py) and speaks its protocol, so the
engine's turn taking, modes and meters work unchanged: Plan / NoPlan / Cut / SetSampling /
SetLookahead / Stop in; WorkerReady or Failed first, then TurnOver, WorkerStats, Log out. The
player's events (PlayerEvents) are not what it hears: it hears the sound, through the rings it
shares with the audio callback (livegen/audio_rings.py):

- always: what the callback put out (the player's FluidSynth render or audio input, and the
  model's own voice) is encoded frame by frame into the context (livegen/audio_context.py);
- in a turn: the model writes codec frames ahead of the callback (at most the lookahead),
  each decoded by the streaming codec decoder, resampled to the device's rate and put in the
  model ring at its frame; the callback plays it when its time comes (livegen/model_voice.py);
- a cut: the context rolls back to the cut's frame (the model's future is dropped) and the
  heard frames from there on are appended instead; the callback fades the old future out.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
import traceback
from collections import deque
from dataclasses import dataclass

import numpy as np

from livegen.audio_context import AudioContext
from livegen.audio_rings import FIRST, FLAG_BITS, LAST, AudioRings, RingLayout
from livegen.decode_worker import WorkerSpec
from livegen.kernels.time_steps import STEPS_PER_SECOND, step_to_seconds
from livegen.messages import (
    Cut,
    Failed,
    NoPlan,
    Plan,
    SetLookahead,
    SetSampling,
    Stop,
    TurnOver,
    WorkerReady,
    WorkerStats,
)
from livegen.model_voice import FADE_SECONDS
from livegen.resampling import Resampler
from livegen.worker_handle import WorkerHandle

STATS_INTERVAL = 0.25
IDLE_POLL = 0.004  # seconds: the encoder must keep up with 16 ms frames while idle
MIN_TURN_AHEAD = 0.5  # seconds of frames a turn writes ahead, at least (the lookahead's more)


@dataclass
class AudioWorkerSpec:
    """The decode worker's spec (preset, clock origin, device, seed, lookahead, sampling,
    threads: the engine makes one for either kind of model) and the audio process's rings."""

    model: WorkerSpec
    rings: RingLayout


class AudioWorkerCore:
    """The worker's logic without the process (tests drive it directly)."""

    def __init__(self, context: AudioContext, voice, params, spec: AudioWorkerSpec, emit):  # noqa: ANN001
        """voice: a FastCodec whose decoder speaks the model's frames; params: the
        SamplingParams of its codes."""
        import torch

        self.context, self.voice, self.params, self.spec, self.emit = (
            context,
            voice,
            params,
            spec,
            emit,
        )
        self.rings = context.rings
        self.vocab = context.vocab
        codec = voice.config
        self.up = Resampler(spec.rings.sample_rate // codec.sample_rate)
        self.frame_seconds = codec.hop / codec.sample_rate
        # The decoder's state depends on this many frames before: decoding them first makes
        # a turn's first frame sound as if the decoder had run all along.
        self.warm_frames = codec.decoder_depth * (codec.kernel - 1) + 1
        self.generator = torch.Generator().manual_seed(spec.model.seed)
        self.lookahead_steps = spec.model.lookahead_steps
        self.epoch = 0
        self.plan: Plan | None = None
        self.writing = False  # the model has begun its turn's frames
        # Its first played and end codec frames, and the sample of the first where its sound
        # begins (the phrase end falls inside a frame), fixed when it begins.
        self.turn = (0, 0, 0)
        self.end_moved = False
        self.played_first = False
        self.tokens = self.late_frames = 0
        self.token_ms: deque[float] = deque(maxlen=256)
        self.frame_ms: deque[float] = deque(maxlen=64)
        self._stats_due = 0.0
        self._rate_mark: tuple[int, float] | None = None
        fade = max(1, round(FADE_SECONDS * spec.rings.sample_rate))
        self.fade_in = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        self.silence = np.zeros(self.vocab.levels, np.int64)  # the codes of steady silence

    # ---- messages ----------------------------------------------------------------------------

    def handle(self, message: object) -> bool:
        """Apply one message; False for Stop."""
        match message:
            case Plan():
                if self.plan is None or self.plan.start != message.start:
                    self._stop_turn()
                self.end_moved = self.plan is not None and self.plan.end != message.end
                self.plan = message
            case NoPlan():
                self.plan = None
                self._stop_turn()
            case Cut():
                self._cut(message)
            case SetSampling(sampling):
                self.params = self.params.replace(
                    temperature=sampling.temperature, top_p=sampling.top_p
                )
            case SetLookahead(steps):
                self.lookahead_steps = int(steps)
            case Stop():
                return False
        return True  # PlayerEvents: the worker hears the sound, not the keys

    def _cut(self, cut: Cut) -> None:
        self.epoch = cut.epoch
        step = cut.close_step if cut.close_step is not None else cut.hold_step
        t = step_to_seconds(step) if step is not None else time.perf_counter() - self.spec.model.t0
        frame = self.rings.frame_of(t)
        if frame is not None and self.context.model_from is not None:
            self.context.roll_back(frame // self.rings.layout.slot)
        self.plan = None
        self.writing = False

    def _stop_turn(self) -> None:
        if self.writing:
            self.context.end_model()
        self.writing = False

    # ---- work --------------------------------------------------------------------------------

    def _frames(self, plan: Plan) -> tuple[int, int, int] | None:
        """The plan's first and end codec frames by the callback's clock, and the sample in
        the first at which the turn begins (None: no sound yet)."""
        start = self.rings.frame_of(step_to_seconds(plan.start))
        end = self.rings.frame_of(step_to_seconds(plan.end))
        if start is None or end is None:
            return None
        slot = self.rings.layout.slot
        return start // slot, math.ceil(end / slot), start % slot

    def work(self) -> bool:
        """Hear what came, then write one model frame if the plan and lookahead allow; True if
        it wrote one."""
        context = self.context
        context.listen()
        plan = self.plan
        frames = self._frames(plan) if plan is not None else None
        lookahead = math.ceil(self.lookahead_steps * 0.01 / self.frame_seconds)
        horizon = context.now_frame + 1 + lookahead
        if frames is None:
            if not self.writing:
                context.take_heard()
            return False
        if not self.writing:
            if frames[0] > horizon:
                context.take_heard()
                return False
            # Fixed for the turn (the callback's anchor may move a frame meanwhile): frames
            # whose time has come already are the model's lead-in, not played.
            soon = context.now_frame + 2
            begin = frames[2] if frames[0] >= soon else 0
            self.turn = (max(frames[0], soon), frames[1], begin)
        elif self.turn[1] != frames[1] and self.end_moved:
            self.turn = (self.turn[0], frames[1], self.turn[2])  # a new Plan moved the end
        self.end_moved = False
        first, end, _ = self.turn
        if context.frame >= end and self.writing:
            # Written to its end, ahead of the sound: the turn is over when its end is heard
            # (the engine's planner, the cut of a player who plays over its last frames and
            # the reaction's measure all count on it being on until then).
            if context.now_frame >= end:
                self._turn_over(plan)
            return False
        # In a turn, it writes further ahead than it begins: a cut costs no reaction (the
        # callback fades the old future out at once), and frames in hand carry it through the
        # machine being busy elsewhere for a while (1.3 s at 0.8x real time in a trial).
        ahead = max(lookahead, math.ceil(MIN_TURN_AHEAD / self.frame_seconds))
        if context.frame >= context.now_frame + 1 + ahead or context.frame >= end:
            return False
        if not self.writing:
            self._begin_turn(first)
        self._write_frame(first, end)
        return True

    def _begin_turn(self, first: int) -> None:
        """The context as heard so far, then, up to the turn's first frame, the silence the
        player left and the model has not heard yet (their codes in one prefill: sampling
        those frames one by one cost ~9 ms each, the slack of a turn's first frame); then the
        codec decoder's state rebuilt from the context's last frames."""
        context = self.context
        context.take_heard(force=True)
        context.begin_model()
        gap = first - context.frame
        if gap > 0:
            codes = np.tile(self.silence, (gap, 1))
            context.decoder.append(self.vocab.flatten(codes).tolist())
            for frame_codes in codes:
                context.put_model(frame_codes)
        self.voice.reset()
        for codes in context.recent_codes(self.warm_frames):
            self.up.up(self.voice.decode_frame(codes))
        self.writing, self.played_first = True, False

    def _write_frame(self, first: int, end: int) -> None:
        from livegen.models.audio_continuation import sample_level

        decoder, vocab = self.context.decoder, self.vocab
        tick = time.perf_counter()
        codes = np.empty(vocab.levels, np.int64)
        for level in range(vocab.levels):
            started = time.perf_counter()
            token = sample_level(decoder.logits(), vocab, level, self.params, self.generator)
            decoder.append([token])
            self.token_ms.append((time.perf_counter() - started) * 1e3)
            codes[level] = token - vocab.level_range(level)[0]
        self.tokens += vocab.levels
        j = self.context.put_model(codes)
        samples = self.up.up(self.voice.decode_frame(codes))
        if j >= first:
            flags = LAST if j == end - 1 else 0
            if not self.played_first:
                begin = self.turn[2]
                flags |= FIRST | begin << FLAG_BITS
                samples[:begin] = 0.0
                fade = min(len(self.fade_in), len(samples) - begin)
                samples[begin : begin + fade] *= self.fade_in[:fade]
                self.played_first = True
            if flags & LAST:
                samples[len(samples) - len(self.fade_in) :] *= self.fade_in[::-1]
            if self.rings.rendered > j * self.rings.layout.slot:
                self.late_frames += 1  # its first sample's time has passed
            self.rings.write_slot(j, self.epoch, samples, flags)
        self.frame_ms.append((time.perf_counter() - tick) * 1e3)

    def _turn_over(self, plan: Plan) -> None:
        self.context.end_model()
        self.writing = False
        self.plan = None
        self.emit(TurnOver(self.epoch, plan.end))

    # ---- stats -------------------------------------------------------------------------------

    def stats(self) -> WorkerStats | None:
        now = time.perf_counter()
        if now < self._stats_due:
            return None
        self._stats_due = now + STATS_INTERVAL
        rate = 0.0
        if self._rate_mark is not None and now > self._rate_mark[1]:
            rate = (self.tokens - self._rate_mark[0]) / (now - self._rate_mark[1])
        self._rate_mark = (self.tokens, now)
        ordered = sorted(self.token_ms)
        pick = (lambda q: ordered[int(q * (len(ordered) - 1))]) if ordered else (lambda q: 0.0)
        frame_ms = float(np.median(self.frame_ms)) if self.frame_ms else 0.0
        slot = self.rings.layout.slot
        ahead = self.context.frame - self.rings.rendered / slot if self.writing else 0.0
        return WorkerStats(
            tokens=self.tokens,
            tokens_per_s=rate,
            ms_per_token_p50=pick(0.5),
            ms_per_token_p99=pick(0.99),
            ahead_steps=max(0.0, ahead) * self.frame_seconds * STEPS_PER_SECOND,
            cpu_s=time.process_time(),
            frames_ahead=max(0.0, ahead),
            late_frames=self.late_frames,
            realtime_factor=self.frame_seconds * 1e3 / frame_ms if frame_ms else 0.0,
        )


def build_core(spec: AudioWorkerSpec, emit) -> AudioWorkerCore:  # noqa: ANN001
    """Load the audio preset's model and codec, warm them up, and return a ready core."""
    import torch

    from livegen.models.audio_continuation import sample_level
    from livegen.models.audio_preset import load_audio_models, load_audio_preset
    from livegen.models.codec_fast import FastCodec
    from livegen.models.sampling import SamplingParams
    from livegen.models.streaming import StreamingDecoder

    torch.set_num_threads(spec.model.threads)
    preset = load_audio_preset(spec.model.preset)
    loaded, codec = load_audio_models(preset, spec.model.device)
    decoder = StreamingDecoder(loaded.model)
    vocab = loaded.model.config.audio_vocab()
    sampling = spec.model.sampling  # temperature and top_p apply to an audio model
    overrides = {"temperature": sampling.temperature, "top_p": sampling.top_p} if sampling else {}
    params = SamplingParams.from_defaults(preset.sampling, **overrides)
    # Warm-up: the first calls of each kernel shape are slow; pay for them before the jam.
    generator = torch.Generator().manual_seed(0)
    decoder.append([vocab.begin, *range(0, 4 * 8)])
    for n in range(8):
        decoder.append([sample_level(decoder.logits(), vocab, n % vocab.levels, params, generator)])
    voice, encoder = FastCodec(codec), FastCodec(codec)
    voice.decode_frame(np.zeros(vocab.levels, np.int64))
    encoder.encode_frame(np.zeros(codec.config.hop, np.float32), vocab.levels)
    for _ in range(4):  # steady silence: its codes stand for the silence not yet heard
        silence = encoder.encode_frame(np.zeros(codec.config.hop, np.float32), vocab.levels)
    encoder.reset()
    rings = AudioRings.attach(spec.rings)
    factor = spec.rings.sample_rate // codec.config.sample_rate
    context = AudioContext(decoder, encoder, vocab, rings, factor)
    core = AudioWorkerCore(context, voice, params, spec, emit)
    core.silence = silence
    gc.collect()
    gc.freeze()
    emit(WorkerReady(loaded.describe(), decoder.N, decoder.L))
    return core


def run_worker(conn, spec: AudioWorkerSpec) -> None:  # noqa: ANN001
    try:
        core = build_core(spec, conn.send)
    except Exception as error:  # a bad model or codec file: the engine says so clearly
        conn.send(Failed(f"{type(error).__name__}: {error}"))
        return
    try:
        running = True
        while running:
            while running and conn.poll():
                running = core.handle(conn.recv())
            if not running:
                break
            if not core.work():
                conn.poll(IDLE_POLL)
            stats = core.stats()
            if stats is not None:
                conn.send(stats)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(Failed("audio model worker crashed:\n" + traceback.format_exc()))
    finally:
        core.rings.close()


class AudioWorker(WorkerHandle):
    """The engine's handle on the audio model's worker, as on the decode worker's."""

    run = staticmethod(run_worker)
    name, what = "livegen-audio-model", "the audio model's worker"
