"""Streaming decode speed on this machine: fp32, bf16 and int8 side by side, each against a
naive full-recompute decoder in the same run, plus what int8 costs in NLL.

    .venv/bin/python benchmarks/bench_decode.py                  # a 16 M model, N=4096, L=256
    .venv/bin/python benchmarks/bench_decode.py --dim 384 --layers 4
    .venv/bin/python benchmarks/bench_decode.py --nll-model presets/piano --nll-midi DIR
    .venv/bin/python benchmarks/bench_decode.py --token-rate DIR  # tokens/s of real music
    python benchmarks/bench_decode.py --device cuda --cuda-graph both  # a GPU: fp32 and bf16,
                                                      # each eager and as a captured CUDA graph

Random weights are fine for speed (the work per token does not depend on the values). The NLL
cost of int8 needs trained weights (--nll-model: a model folder) and real music (--nll-midi: a
folder of MIDI files, read in name order). --token-rate derives the "tokens/s dense piano
needs" figure livegen bench compares against (livegen/benchmark.py).

Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from livegen.benchmark import BenchResult, run_bench
from livegen.kernels.time_steps import seconds_to_step
from livegen.kernels.vocab import BEGIN, TIME_SHIFT, VELOCITY
from livegen.models.config import PerceiverARConfig
from livegen.models.loading import quantize_int8
from livegen.models.perceiver_ar import PerceiverAR
from livegen.training.evaluate import stream_nll


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"


def memory_bandwidth() -> float:
    """GB/s one thread streams from memory (the sum of 64 MB, best of 20): a decode step is
    bound by it, and on a shared VM it moves (19.8-26.7 GB/s seen on one day)."""
    big = torch.ones(16_000_000)
    best = float("inf")
    for _ in range(20):
        t0 = time.perf_counter()
        big.sum()
        best = min(best, time.perf_counter() - t0)
    return big.numel() * 4 / best / 1e9


def gpu_name(device: torch.device) -> str:
    props = torch.cuda.get_device_properties(device)
    return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"


def variants(
    model: PerceiverAR, which: list[str], device: torch.device
) -> dict[str, tuple[PerceiverAR, bool]]:
    """name -> (model on `device`, cpu_kernels). A "-torch" suffix times the torch step instead
    of the numba one (models/cpu_decode.py) on the same weights: the comparison for the
    kernels. On a GPU only fp32 and bf16 exist (int8 and the numba step are the CPU's)."""
    out = {}
    for name in which:
        base, _, path = name.partition("-")
        if path not in ("", "torch"):
            raise SystemExit(f"unknown variant {name!r}: fp32, bf16, int8, each optionally -torch")
        if device.type != "cpu" and (base == "int8" or path):
            raise SystemExit(f"variant {name!r} runs on the CPU only; on {device.type}: fp32, bf16")
        if base == "fp32":
            variant = model.to(device)
        elif base == "bf16":
            variant = PerceiverAR(model.config).to(device, torch.bfloat16).eval()
            variant.load_state_dict(model.state_dict())
        elif base == "int8":
            variant = quantize_int8(model)
        else:
            raise SystemExit(f"unknown variant {name!r}: fp32, bf16, int8, each optionally -torch")
        out[name] = (variant, path != "torch")
    return out


def print_result(name: str, r: BenchResult) -> None:
    print(
        f"{name:11s} p50 {r.ms_per_token_p50:6.2f}  p90 {r.ms_per_token_p90:6.2f}  "
        f"p99 {r.ms_per_token_p99:6.2f}  max {r.ms_per_token_max:6.2f} ms/token  "
        f"{r.tokens_per_s:6.0f} tok/s | prefill {r.prefill_ms:7.0f} ms | burst refill "
        f"{r.refill_ms:5.1f} ms | recompute {r.recompute_ms_per_token:7.1f} ms/token "
        f"-> {r.speedup_vs_recompute:5.1f}x | sampling {r.sample_ms_p50:.3f} ms"
    )


# ---- int8 NLL cost ----------------------------------------------------------------------------


def music_tokens(folder: Path, count: int) -> list[int]:
    """BEGIN piece BEGIN piece ... from the MIDI files of folder (name order), `count` long."""
    from livegen.kernels.errors import MidiFileError
    from livegen.kernels.tokenizer import encode_file

    tokens: list[int] = []
    for path in sorted(folder.rglob("*.mid")):
        try:
            piece = encode_file(path)
        except MidiFileError:
            continue
        tokens += [BEGIN, *piece.tolist()]
        if len(tokens) >= count:
            return tokens[:count]
    if len(tokens) < 2:
        raise SystemExit(f"{folder}: no readable MIDI files")
    return tokens


@torch.no_grad()
def streamed_nll(model: PerceiverAR, tokens: list[int]) -> float:
    """Teacher-forced NLL through the streaming decoder (livegen-train eval's measure)."""
    return stream_nll(model, np.asarray(tokens, dtype=np.int64)).nll


def int8_nll_cost(model: PerceiverAR, tokens: list[int]) -> dict[str, float]:
    fp32 = streamed_nll(model, tokens)
    int8 = streamed_nll(quantize_int8(model), tokens)
    return {"tokens": len(tokens), "nll_fp32": fp32, "nll_int8": int8, "nll_cost": int8 - fp32}


# ---- tokens per second of real music ---------------------------------------------------------


def token_rate(folder: Path, window_s: float = 1.0) -> dict[str, float]:
    """Distribution, over every window (10 ms hop) of every file, of the tokens it holds."""
    from livegen.kernels.errors import MidiFileError
    from livegen.kernels.tokenizer import encode_file

    steps = seconds_to_step(window_s)
    counts, files = [], 0
    for path in sorted(folder.rglob("*.mid")):
        try:
            tokens = encode_file(path).astype(np.int64)
        except MidiFileError:
            continue
        shift = np.where((tokens >= TIME_SHIFT) & (tokens < VELOCITY), tokens - TIME_SHIFT + 1, 0)
        step = np.cumsum(shift)  # the time step each token sounds at
        if len(tokens) == 0 or step[-1] < steps:
            continue
        per_step = np.bincount(step, minlength=int(step[-1]) + 1)
        counts.append(np.convolve(per_step, np.ones(steps, dtype=np.int64), mode="valid"))
        files += 1
    if not counts:
        raise SystemExit(f"{folder}: no MIDI files at least {window_s} s long")
    every = np.concatenate(counts) / window_s
    return {
        "files": files,
        "windows": int(every.size),
        "p50": float(np.percentile(every, 50)),
        "p90": float(np.percentile(every, 90)),
        "p99": float(np.percentile(every, 99)),
        "p99_9": float(np.percentile(every, 99.9)),
        "max": float(every.max()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--latents", type=int, default=256)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--refill", type=int, help="R (default L/2)")
    parser.add_argument("--tokens", type=int, default=300, help="decoded tokens timed per variant")
    parser.add_argument("--recompute-tokens", type=int, default=8)
    parser.add_argument(
        "--variants",
        default="fp32,bf16,int8,fp32-torch",
        help="fp32, bf16, int8, each optionally -torch (the torch step); '' for none",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="run the variants in turn this often; each keeps its fastest round (shared machine)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    parser.add_argument(
        "--cuda-graph",
        choices=("off", "on", "both"),
        default="off",
        help="on CUDA: time the eager step (off), the captured-graph step (on), or both side by "
        "side (a '+graph' suffix names the graph runs)",
    )
    parser.add_argument("--nll-model", type=Path, help="a trained model folder for the int8 cost")
    parser.add_argument("--nll-midi", type=Path, help="MIDI folder the NLL is measured on")
    parser.add_argument("--nll-tokens", type=int, default=2000)
    parser.add_argument("--token-rate", type=Path, metavar="DIR", help="tokens/s of MIDI in DIR")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible to torch on this machine")
    if args.cuda_graph != "off" and device.type != "cuda":
        raise SystemExit("--cuda-graph on/both needs --device cuda")
    torch.set_num_threads(1)  # the bandwidth figure is one thread's, as a decode step's
    report: dict[str, object] = {"machine": machine(), "threads": args.threads}
    report["memory_gb_per_s"] = round(memory_bandwidth(), 1)
    report["device"] = str(device)
    report["torch"] = torch.__version__
    torch.set_num_threads(args.threads)
    print(
        f"machine: {report['machine']}; torch {torch.__version__}, {args.threads} thread(s); "
        f"memory {report['memory_gb_per_s']} GB/s (one thread)"
    )
    if device.type == "cuda":
        report["gpu"] = gpu_name(device)
        print(f"gpu: {report['gpu']}, CUDA {torch.version.cuda}")
    if args.token_rate is not None:
        rate = token_rate(args.token_rate)
        report["token_rate"] = rate
        print(
            f"tokens per 1 s window over {rate['files']} files ({rate['windows']} windows): "
            f"p50 {rate['p50']:.0f}, p90 {rate['p90']:.0f}, p99 {rate['p99']:.0f}, "
            f"p99.9 {rate['p99_9']:.0f}, max {rate['max']:.0f}"
        )
        print(json.dumps(report))
        return 0
    wanted = [v for v in args.variants.split(",") if v]
    config = PerceiverARConfig(
        context=args.context,
        latents=args.latents,
        dim=args.dim,
        heads=args.heads,
        layers=args.layers,
    )
    torch.manual_seed(0)
    model = PerceiverAR(config).eval()
    report["model"] = {
        "parameters": config.num_parameters(),
        "context": args.context,
        "latents": args.latents,
        "dim": args.dim,
        "heads": args.heads,
        "layers": args.layers,
    }
    if wanted:
        print(
            f"model: {config.num_parameters() / 1e6:.1f} M parameters, N={args.context}, "
            f"L={args.latents}, dim {args.dim}, {args.heads} heads, {args.layers} layers "
            f"(random weights)"
        )
    # Variants take turns, round after round: the machine is shared (other processes steal
    # cycles and memory bandwidth in bursts), so each variant reports its least disturbed
    # round (lowest p50) and every round's p50/p99 stays in the JSON.
    built = variants(model, wanted, device)
    graphs = {"off": [False], "on": [True], "both": [False, True]}[args.cuda_graph]
    runs = [(name + ("+graph" if graph else ""), name, graph) for name in built for graph in graphs]
    rounds: dict[str, list[BenchResult]] = {label: [] for label, _, _ in runs}
    for round_ in range(max(1, args.rounds)):
        for label, name, graph in runs:
            variant, cpu_kernels = built[name]
            result = run_bench(
                variant,
                cpu_kernels=cpu_kernels,
                device_label=label,
                tokens=args.tokens,
                recompute_tokens=args.recompute_tokens,
                refill=args.refill,
                seed=round_,
                cuda_graph=graph,
            )
            rounds[label].append(result)
            print_result(f"{label}#{round_ + 1}", result)
            if result.note:
                print(f"  note: {result.note}")
    results = {}
    if built:
        print("best round of each:")
    for name, runs in rounds.items():
        best = min(runs, key=lambda r: r.ms_per_token_p50)
        print_result(name, best)
        results[name] = best.to_dict()
        results[name]["rounds"] = [
            {"p50": r.ms_per_token_p50, "p99": r.ms_per_token_p99, "max": r.ms_per_token_max}
            for r in runs
        ]
    report["variants"] = results
    report["load_average_after"] = round(os.getloadavg()[0], 2)
    if args.nll_model is not None:
        if args.nll_midi is None:
            parser.error("--nll-model needs --nll-midi")
        from livegen.models.checkpoint import load_model

        held_out = music_tokens(args.nll_midi, args.nll_tokens)
        trained, source = load_model(args.nll_model), str(args.nll_model)
        cost = int8_nll_cost(trained, held_out)
        cost["model"] = source
        cost["parameters"] = trained.config.num_parameters()
        report["int8_nll"] = cost
        print(
            f"int8 NLL cost over {cost['tokens']} tokens: fp32 {cost['nll_fp32']:.4f}, "
            f"int8 {cost['nll_int8']:.4f} nats/token ({cost['nll_cost']:+.4f}, "
            f"perplexity x{math.exp(cost['nll_cost']):.3f})"
        )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
