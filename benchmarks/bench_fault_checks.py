"""What the checks of issue 19 cost on the data path: the unclosed-note scan that read_midi now
runs on every file (kernels/midi_scan.py) and the gap cap `data` applies to every piece
(training/repair.py), beside the parse + encode they join, on the same files in the same run.

    .venv/bin/python benchmarks/bench_fault_checks.py --midi DIR [--files N] [--repeats R]

Files are read into memory first (no disk in the timings); one untimed pass compiles numba.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from livegen.kernels.midi_scan import unclosed_notes
from livegen.kernels.tokenizer import encode_performance, parse_performance
from livegen.training.repair import cap_gaps


def best(repeats: int, job) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi", type=Path, required=True)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(args.midi.rglob("*.mid"))[: args.files]
    blobs = [p.read_bytes() for p in paths]
    tokens = [encode_performance(parse_performance(b, "x")) for b in blobs]
    counts = [unclosed_notes(b) for b in blobs]  # the warm-up pass compiles the kernels
    unclosed, with_unclosed = sum(counts), sum(1 for c in counts if c)
    capped = sum(cap_gaps(t, 30.0)[1] for t in tokens)

    def parse_encode() -> None:
        for b in blobs:
            encode_performance(parse_performance(b, "x"))

    def scan() -> None:
        for b in blobs:
            unclosed_notes(b)

    def cap() -> None:
        for t in tokens:
            cap_gaps(t, 30.0)

    figures = {
        name: best(args.repeats, job)
        for name, job in (("parse_encode", parse_encode), ("unclosed_scan", scan), ("gap_cap", cap))
    }
    n = len(blobs)
    for name, seconds in figures.items():
        print(f"{name:14s} {seconds * 1e6 / n:8.1f} us/file  {n / seconds:10.0f} files/s")
    overhead = (figures["unclosed_scan"] + figures["gap_cap"]) / figures["parse_encode"]
    print(
        f"checks add {overhead * 100:.1f}% to parse + encode "
        f"({n} files; {unclosed} unclosed notes in {with_unclosed} files; {capped} gaps capped)"
    )
    print(
        json.dumps(
            {
                "files": n,
                "us_per_file": {k: round(v * 1e6 / n, 2) for k, v in figures.items()},
                "overhead": round(overhead, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
