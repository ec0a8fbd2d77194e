"""What a player's note costs the decoder: one token, and a 3-token note (VELOCITY, NOTE_ON and
a TIME_SHIFT) appended at once, on a preset's model, for each decode path side by side.

    .venv/bin/python benchmarks/bench_note_append.py [--preset piano] [--repeats 300] [--clock cpu]

After `--context` tokens of random context, each repeat appends one token, then a 3-token note,
and rolls the note back (the context grows by one token a repeat: 1000 to 1300 by default,
all within the preset's window of 1024 or at its slide, where the cost no longer grows). This is the decoder's
share of the jam's input -> context latency (benchmarks/bench_jam.py measures the whole path).
Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import torch

from livegen.benchmark import percentile, random_context
from livegen.kernels.vocab import NOTE_ON, NUM_EVENTS, TIME_SHIFT, VELOCITY
from livegen.models.loading import load_preset_model
from livegen.models.preset import find_preset, load_preset
from livegen.models.streaming import StreamingDecoder

PATHS = {  # name -> (quantize, cpu_kernels)
    "fp32": ("none", True),
    "fp32-torch": ("none", False),
    "int8": ("int8", True),
}


def measure(
    decoder: StreamingDecoder, context: int, repeats: int, clock=time.perf_counter
) -> dict[str, float]:  # noqa: ANN001
    rng = random.Random(0)
    decoder.append(random_context(context))
    one, note = [], []
    for _ in range(repeats):
        t0 = clock()
        decoder.append([rng.randrange(NUM_EVENTS)])
        one.append((clock() - t0) * 1e3)
        position = decoder.position
        t0 = clock()
        velocity, pitch, shift = rng.randrange(32), rng.randrange(128), rng.randrange(100)
        decoder.append([VELOCITY + velocity, NOTE_ON + pitch, TIME_SHIFT + shift])
        note.append((clock() - t0) * 1e3)
        decoder.rollback(position)
    one.sort()
    note.sort()
    return {
        "one_token_p50": percentile(one, 50),
        "one_token_p90": percentile(one, 90),
        "note_p50": percentile(note, 50),
        "note_p90": percentile(note, 90),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="piano")
    parser.add_argument("--context", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--paths", default=",".join(PATHS), help=f"of {', '.join(PATHS)}")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: perf_counter; cpu: this thread's CPU time (steadier on a loaded machine, "
        "blind to waiting)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = load_preset(find_preset(args.preset))
    report: dict = {"preset": args.preset, "load_average": os.getloadavg()[0], "paths": {}}
    report["clock"] = args.clock
    for name in args.paths.split(","):
        if name not in PATHS:
            parser.error(f"unknown path {name!r}: {', '.join(PATHS)}")
        quantize, cpu_kernels = PATHS[name]
        model = load_preset_model(preset, "cpu", quantize=quantize).model
        clock = time.thread_time if args.clock == "cpu" else time.perf_counter
        decoder = StreamingDecoder(model, cpu_kernels=cpu_kernels)
        figures = measure(decoder, args.context, args.repeats, clock)
        report["paths"][name] = figures
        print(
            f"{name:10s} one token p50 {figures['one_token_p50']:.2f} ms (p90 "
            f"{figures['one_token_p90']:.2f}) | 3-token note p50 {figures['note_p50']:.2f} ms "
            f"(p90 {figures['note_p90']:.2f})"
        )
    report["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
