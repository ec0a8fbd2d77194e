"""`livegen bench`: does this machine decode a preset in real time?

Measures the streaming decoder on the preset's own model (per-token latency p50/p99/max,
tokens/s, prefill, window refills), a naive full-recompute decoder in the same run, and gives
the verdict against the token rate dense piano playing needs (livegen/benchmark.py says how
that rate was derived). `--json` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import json

from livegen.kernels.errors import LivegenError
from livegen.kernels.values import COUNT, SEED, THREADS

HELP = (
    "measure whether this machine decodes a preset in real time (latency, tokens/s; for an "
    "audio preset, the codec's decoder too)"
)


class BenchError(LivegenError):
    """A bench setting that cannot work."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="piano", help="preset name or .toml path")
    parser.add_argument(
        "--context",
        type=COUNT.option(),
        help="tokens to prefill before decoding (default: the model's N)",
    )
    parser.add_argument(
        "--tokens", type=COUNT.option(), default=512, help="tokens to decode (default 512)"
    )
    parser.add_argument(
        "--recompute-tokens",
        type=COUNT.option(),
        default=16,
        help="tokens for the naive full-recompute decoder (default 16; it is slow)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (default: cuda, then mps, then cpu), cpu, cuda, mps"
    )
    parser.add_argument(
        "--threads",
        type=THREADS.option(),
        default=1,
        help="CPU threads for torch (default 1: fastest for small decode steps on a CPU)",
    )
    parser.add_argument(
        "--quantize",
        choices=("none", "int8"),
        help="override the preset's [model].quantize (int8: CPU only)",
    )
    parser.add_argument(
        "--no-cuda-graph",
        action="store_true",
        help="on CUDA, run the decode step eagerly instead of replaying a captured graph",
    )
    parser.add_argument("--seed", type=SEED.option(), default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import torch

    from livegen.benchmark import run_bench
    from livegen.models.loading import load_preset_model
    from livegen.models.preset import load_preset
    from livegen.models.sampling import SamplingParams

    if _is_audio_preset(args.preset):
        return _run_audio(args)
    preset = load_preset(args.preset)
    torch.set_num_threads(args.threads)
    loaded = load_preset_model(preset, args.device, quantize=args.quantize)
    result = run_bench(
        loaded.model,
        preset=preset.name,
        device_label=loaded.describe(),
        context_tokens=args.context,
        tokens=args.tokens,
        recompute_tokens=args.recompute_tokens,
        params=SamplingParams.from_defaults(preset.sampling),
        cuda_graph=loaded.device.type == "cuda" and not args.no_cuda_graph,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    r = result
    print(f"preset {r.preset}: {r.parameters / 1e6:.1f} M parameters, N={r.context}, L={r.latents}")
    graph = ", CUDA graph" if r.cuda_graph else ""
    print(f"device: {r.device}{graph}, {r.threads} thread(s)")
    print(f"prefill of {r.prefill_tokens} tokens: {r.prefill_ms:.1f} ms")
    print(
        f"decode: p50 {r.ms_per_token_p50:.2f} ms, p99 {r.ms_per_token_p99:.2f} ms, "
        f"max {r.ms_per_token_max:.2f} ms per token; {r.tokens_per_s:.0f} tokens/s"
    )
    print(
        f"window refill: each step computes {r.windows_per_step} window(s), so no step pays a "
        f"burst; a burst refill of {r.refill_latents} latents (after a rollback) costs "
        f"{r.refill_ms:.1f} ms"
    )
    print(f"sampling controls: {r.sample_ms_p50:.3f} ms per token")
    print(
        f"full recompute (no cache): {r.recompute_ms_per_token:.1f} ms per token; "
        f"streaming is {r.speedup_vs_recompute:.1f}x faster"
    )
    if r.note:
        print(f"note: {r.note}")
    print(r.verdict())
    return 0


def _is_audio_preset(name: str) -> bool:
    from livegen.models.preset import find_preset, preset_kind

    try:
        return preset_kind(find_preset(name)) == "audio"
    except LivegenError:
        return False  # load_preset says what is wrong with the name


def _run_audio(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from livegen.audio_bench import run_audio_bench
    from livegen.models.audio_preset import load_audio_models, load_audio_preset
    from livegen.models.sampling import SamplingParams

    preset = load_audio_preset(args.preset)
    torch.set_num_threads(args.threads)
    loaded, codec = load_audio_models(preset, args.device, args.quantize)
    config = loaded.model.config
    frames = (args.context or config.context) // config.levels
    rng = np.random.default_rng(args.seed)
    prompt = rng.integers(0, config.codebook_size, size=(frames, config.levels))
    r = run_audio_bench(
        loaded.model,
        codec,
        prompt,
        preset=preset.name,
        device_label=loaded.describe(),
        tokens=args.tokens,
        params=SamplingParams.from_defaults(preset.sampling),
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(r.to_dict()))
        return 0
    print(
        f"audio preset {r.preset}: {r.parameters / 1e6:.1f} M parameters, N={r.context} "
        f"({r.context_seconds:.1f} s of audio), L={r.latents}, codec {preset.codec}"
    )
    print(f"prefill of {r.prefill_tokens} tokens: {r.prefill_ms:.1f} ms")
    print(
        f"decode: p50 {r.ms_per_token_p50:.2f} ms, p99 {r.ms_per_token_p99:.2f} ms per token, "
        f"level mask + sampling {r.sample_ms_mean:.3f} ms; {r.delivered_tokens_per_s:.0f} "
        f"tokens/s (needed: {r.needed_tokens_per_s:.0f})"
    )
    print(
        f"codec decoder: {r.codec_ms_per_frame_mean:.2f} ms per frame (p99 "
        f"{r.codec_ms_per_frame_p99:.2f}), {1000 / r.frame_rate:.0f} ms of audio each"
    )
    print(r.verdict())
    return 0
