"""Does this machine keep up with an audio preset? The core of `livegen bench` for audio.

An audio model must write frame rate x levels tokens per second (62.5 x 4 = 250 for codec-24k
at 4 levels), and every frame it writes must also go through the codec's decoder before it
can be heard. So one second of audio costs: levels x frame rate x (decode step + level-masked
sampling) + frame rate x (codec decode of one frame), all on the same thread. The verdict
compares that with one second; the goal is 1.5x real time (headroom for the audio callback,
the encoder of the player's sound and the machine's other work).

Every step is timed after a full context has been prefilled (window changes included; the
cost of a step does not depend on which codes the context holds, so they are drawn at random
from a seed); the codec frame is the NumPy streaming decoder the live path uses
(models/codec_fast.py), on the frames the model wrote.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from livegen.benchmark import percentile
from livegen.models.audio_continuation import prompt_ids, sample_level
from livegen.models.sampling import SamplingParams
from livegen.models.streaming import StreamingDecoder

GOAL_REALTIME = 1.5  # generation speed / real time the live path asks for


@dataclass
class AudioBenchResult:
    preset: str
    device: str
    parameters: int
    context: int
    latents: int
    context_seconds: float  # the audio one context covers
    levels: int
    frame_rate: float
    needed_tokens_per_s: float  # frame rate x levels
    prefill_tokens: int
    prefill_ms: float
    ms_per_token_p50: float
    ms_per_token_p99: float
    ms_per_token_mean: float
    sample_ms_mean: float  # level mask + sampling controls
    codec_ms_per_frame_mean: float  # the codec's decoder, one frame
    codec_ms_per_frame_p99: float
    delivered_tokens_per_s: float  # model alone: 1000 / (mean step + mean sampling)
    realtime_factor: float  # audio seconds produced per compute second, codec included
    realtime: bool  # >= 1: keeps up; the goal is GOAL_REALTIME

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def verdict(self) -> str:
        word = "keeps up" if self.realtime else "does NOT keep up"
        goal = "meets" if self.realtime_factor >= GOAL_REALTIME else "misses"
        return (
            f"{word}: {self.levels} levels x {self.frame_rate:g} frames/s need "
            f"{self.needed_tokens_per_s:.0f} tokens/s; the model delivers "
            f"{self.delivered_tokens_per_s:.0f} tokens/s, and with the codec's decoder "
            f"({self.codec_ms_per_frame_mean:.2f} ms a frame) this machine writes audio at "
            f"{self.realtime_factor:.2f}x real time ({goal} the {GOAL_REALTIME}x goal; "
            f"{self.device}, 1 thread)"
        )


@torch.no_grad()
def run_audio_bench(
    model,  # noqa: ANN001 - a PerceiverAR over codec tokens
    codec,  # noqa: ANN001 - its Codec
    prompt_codes: np.ndarray,
    *,
    preset: str,
    device_label: str,
    tokens: int,
    params: SamplingParams,
    seed: int = 0,
) -> AudioBenchResult:
    from livegen.models.codec_fast import FastCodec

    config = model.config
    vocab = config.audio_vocab()
    decoder = StreamingDecoder(model)
    generator = torch.Generator().manual_seed(seed)
    context = prompt_ids(vocab, prompt_codes, config.context)
    # GPU work is queued: each time waits for the device, or it would count only the launch.
    cuda = decoder.device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(decoder.device)) if cuda else (lambda: None)
    t0 = time.perf_counter()
    logits = decoder.append(context)
    sync()
    prefill_ms = (time.perf_counter() - t0) * 1e3
    steps, samples, written = [], [], []
    warmup = 8
    for n in range(warmup + tokens):
        t0 = time.perf_counter()
        token = sample_level(logits, vocab, n % vocab.levels, params, generator)
        t1 = time.perf_counter()
        logits = decoder.append([token])
        sync()
        t2 = time.perf_counter()
        written.append(token)
        if n >= warmup:
            samples.append((t1 - t0) * 1e3)
            steps.append((t2 - t1) * 1e3)
    fast = FastCodec(codec)
    frames = vocab.unflatten(np.asarray(written))
    frame_ms = []
    for row in frames:
        t0 = time.perf_counter()
        fast.decode_frame(row)
        frame_ms.append((time.perf_counter() - t0) * 1e3)
    ordered, codec_sorted = sorted(steps), sorted(frame_ms)
    step_mean, sample_mean = float(np.mean(steps)), float(np.mean(samples))
    codec_mean = float(np.mean(frame_ms))
    frame_rate = codec.config.frame_rate
    second_ms = frame_rate * (vocab.levels * (step_mean + sample_mean) + codec_mean)
    factor = 1000.0 / second_ms
    return AudioBenchResult(
        preset=preset,
        device=device_label,
        parameters=config.num_parameters(),
        context=config.context,
        latents=config.latents,
        context_seconds=config.context / (vocab.levels * frame_rate),
        levels=vocab.levels,
        frame_rate=frame_rate,
        needed_tokens_per_s=frame_rate * vocab.levels,
        prefill_tokens=len(context),
        prefill_ms=prefill_ms,
        ms_per_token_p50=percentile(ordered, 50),
        ms_per_token_p99=percentile(ordered, 99),
        ms_per_token_mean=step_mean,
        sample_ms_mean=sample_mean,
        codec_ms_per_frame_mean=codec_mean,
        codec_ms_per_frame_p99=percentile(codec_sorted, 99),
        delivered_tokens_per_s=1000.0 / (step_mean + sample_mean),
        realtime_factor=factor,
        realtime=factor >= 1.0,
    )
