"""The decode step's CPU time (this thread's, not the wall clock's): for side-by-side checks of
two checkouts on a machine others are loading, where wall-clock figures swing 2x.

    .venv/bin/python benchmarks/bench_decode_cpu.py [--variants fp32,fp32-torch,int8]

The model of bench_decode.py's default (random weights, 16.1 M parameters, N = 4096, L = 256,
R = 128), prefilled with 4096 random tokens, then `--tokens` decode steps, each timed with
time.thread_time (blind to time spent waiting for a core, and to memory stalls only partly).
Only public interfaces, so the script runs against older checkouts too. Prints figures, then
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from livegen.benchmark import random_context
from livegen.models.config import PerceiverARConfig
from livegen.models.loading import quantize_int8
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.streaming import StreamingDecoder


def step_times(model: PerceiverAR, cpu_kernels: bool, tokens: int) -> list[float]:
    decoder = StreamingDecoder(model, cpu_kernels=cpu_kernels)
    generator = torch.Generator().manual_seed(0)
    logits = decoder.append(random_context(model.config.context, 0))
    times = []
    for _ in range(tokens + 8):  # the first 8 warm up
        token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))
        t0 = time.thread_time()
        logits = decoder.append([token])
        times.append((time.thread_time() - t0) * 1e3)
    return sorted(times[8:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="fp32,fp32-torch,int8")
    parser.add_argument("--tokens", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = PerceiverARConfig(context=4096, latents=256, dim=512, heads=8, layers=4)
    model = PerceiverAR(config).eval()
    report: dict = {"load_average": os.getloadavg()[0], "variants": {}}
    for name in args.variants.split(","):
        weights = quantize_int8(model) if name.startswith("int8") else model
        times = step_times(weights, not name.endswith("-torch"), args.tokens)
        figures = {
            "cpu_ms_p50": times[len(times) // 2],
            "cpu_ms_p90": times[int(len(times) * 0.9)],
            "cpu_ms_mean": sum(times) / len(times),
        }
        report["variants"][name] = figures
        print(
            f"{name:11s} CPU ms/token p50 {figures['cpu_ms_p50']:.2f} (mean {figures['cpu_ms_mean']:.2f})"
        )
    report["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
