"""Tokenizer throughput: livegen (symusic parse + numba encode) vs miditok's MIDILike.

    .venv/bin/python benchmarks/bench_tokenizer.py [--files N] [--repeats R] [--json]
    .venv/bin/python benchmarks/bench_tokenizer.py --midi /work/data/music21/music21-midi

Converts N music21 corpus pieces to MIDI once (cached in ~/.cache/livegen/bench-midi, reused
when present), or takes N files spread evenly over a folder of MIDI files (--midi; e.g. what
`livegen-train data --music21` converted), then tokenises the same files from their paths with both tokenizers. Timings
are warm: one untimed pass first, so numba's compile (or cache load) and miditok's set-up
are excluded; the compile cost is measured separately, in fresh processes. miditok's MIDILike
is not the same encoding (ticks per beat, no pedal), only the same job: file in, ids out.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import platformdirs

CACHE = Path(platformdirs.user_cache_dir("livegen")) / "bench-midi"
SCORE_SUFFIXES = {".mxl", ".xml", ".musicxml", ".krn"}  # one piece per file
MAX_SOURCE_BYTES = 300_000  # skip the few huge scores: conversion would dominate the run


def corpus_midi(count: int) -> list[Path]:
    """``count`` corpus pieces as MIDI files, converting only those not cached yet."""
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = sorted(CACHE.glob("*.mid"))
    if len(cached) >= count:
        return cached[:count]
    import music21

    sources = sorted(
        p
        for p in map(Path, music21.corpus.getPaths())
        if p.suffix in SCORE_SUFFIXES and p.stat().st_size < MAX_SOURCE_BYTES
    )
    stride = max(1, len(sources) // (count * 2))
    made = {p.name for p in cached}
    started = time.perf_counter()
    for source in sources[::stride]:
        if len(made) >= count:
            break
        name = "_".join(source.parts[-2:]).replace(".", "_") + ".mid"
        if name in made:
            continue
        try:
            music21.converter.parse(source).write("midi", fp=str(CACHE / name))
        except Exception as error:  # some corpus entries do not convert; skip them
            print(f"  skip {source.name}: {type(error).__name__}", file=sys.stderr)
            continue
        made.add(name)
    print(f"converted corpus to MIDI in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return sorted(CACHE.glob("*.mid"))[:count]


def folder_midi(folder: Path, count: int) -> list[Path]:
    """``count`` MIDI files spread evenly over folder (sorted), so every composer is in."""
    every = sorted(folder.rglob("*.mid"))
    if not every:
        sys.exit(f"{folder}: no .mid files")
    stride = max(1, len(every) // count)
    return every[::stride][:count]


def time_livegen(paths: list[Path], repeats: int) -> tuple[float, int]:
    from livegen.kernels.tokenizer import encode_file

    tokens = sum(len(encode_file(p)) for p in paths)  # warm-up pass, untimed
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for path in paths:
            encode_file(path)
        best = min(best, time.perf_counter() - started)
    return best, tokens


def time_miditok(paths: list[Path], repeats: int) -> tuple[float, int]:
    import miditok

    tokenizer = miditok.MIDILike()

    def count(path: Path) -> int:
        result = tokenizer.encode(path)
        sequences = result if isinstance(result, list) else [result]
        return sum(len(s.ids) for s in sequences)

    tokens = sum(count(p) for p in paths)  # warm-up pass, untimed
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for path in paths:
            tokenizer.encode(path)
        best = min(best, time.perf_counter() - started)
    return best, tokens


FIRST_CALL = """
import time, sys
started = time.perf_counter()
from livegen.kernels.tokenizer import encode_file, decode_tokens
imported = time.perf_counter()
decode_tokens(encode_file(sys.argv[1]))
print(imported - started, time.perf_counter() - imported)
"""


def first_call_seconds(path: Path, cache_dir: str | None) -> tuple[float, float]:
    """(import, first encode+decode) seconds in a fresh process; cache_dir=None: default cache."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", FIRST_CALL, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300, help="corpus pieces (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes, best kept")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--midi", type=Path, help="take the files from this MIDI folder")
    args = parser.parse_args()

    paths = folder_midi(args.midi, args.files) if args.midi else corpus_midi(args.files)
    with tempfile.TemporaryDirectory() as empty_cache:
        _, compile_s = first_call_seconds(paths[0], empty_cache)  # compiles from scratch
    first_call_seconds(paths[0], None)  # make sure the default cache is filled
    _, cached_s = first_call_seconds(paths[0], None)

    ours_s, ours_tokens = time_livegen(paths, args.repeats)
    theirs_s, theirs_tokens = time_miditok(paths, args.repeats)
    from importlib.metadata import version

    result = {
        "files": len(paths),
        "source": str(args.midi) if args.midi else str(CACHE),
        "versions": {"miditok": version("miditok"), "symusic": version("symusic")},
        "machine_load_1m": round(os.getloadavg()[0], 2),
        "livegen_files_per_s": round(len(paths) / ours_s, 1),
        "livegen_tokens_per_s": round(ours_tokens / ours_s),
        "miditok_files_per_s": round(len(paths) / theirs_s, 1),
        "miditok_tokens_per_s": round(theirs_tokens / theirs_s),
        "speedup_files": round(theirs_s / ours_s, 1),
        "first_call_compile_s": round(compile_s, 2),
        "first_call_cached_s": round(cached_s, 3),
    }
    if not args.json:
        print(f"{len(paths)} music21 corpus pieces as MIDI, warm, best of {args.repeats} passes")
        print(f"{'':28}{'files/s':>10}{'tokens/s':>14}{'tokens':>10}{'seconds':>9}")
        for name, seconds, tokens in (
            ("livegen (symusic + numba)", ours_s, ours_tokens),
            (f"miditok {version('miditok')} MIDILike", theirs_s, theirs_tokens),
        ):
            print(
                f"{name:28}{len(paths) / seconds:>10.0f}{tokens / seconds:>14,.0f}"
                f"{tokens:>10}{seconds:>9.3f}"
            )
        print(f"speedup (files/s): {result['speedup_files']}x")
        print(
            f"first call in a fresh process: {compile_s:.2f} s with numba compiling, "
            f"{cached_s:.3f} s from numba's cache"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
