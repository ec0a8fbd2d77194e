"""Played copies of sequenced MIDI: the same notes with a player's timing, to ask how the
continuation measure reads music that is played rather than sequenced.

    .venv/bin/python benchmarks/played_copies.py OUT FOLDER... [--limit 24] [--spread-ms 15]
    livegen-train eval-continuations OUT --json --seed S

The held-out sets this machine has (Debian's game music, songs) are sequenced: every onset on
the grid, and the music repeats its seconds (the real continuation's novelty is 0.20-0.40,
BENCHMARKS.md issue 18). The issue's own files were played (novelty about 0.9). Each copy
moves every onset (notes that start together move together) by Gaussian noise of
`--spread-ms` and keeps each note's length; a player's timing is off the grid by 10-30 ms.
The non-drum notes are merged into one track, as the measure merges them. Which files: the
ones eval-continuations would take with the same --limit. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from livegen.kernels.errors import LivegenError
from livegen.kernels.tokenizer import Notes, write_midi
from livegen.training.continuations import find_files, merged_notes, spread


def played(notes: Notes, spread_s: float, rng: np.random.Generator) -> Notes:
    """`notes` with each onset (a chord's notes together) moved by N(0, spread_s), lengths kept
    (an onset moved before 0 starts at 0)."""
    onsets, which = np.unique(np.round(notes.start, 3), return_inverse=True)
    start = np.maximum(notes.start + rng.normal(0.0, spread_s, len(onsets))[which], 0.0)
    return Notes(
        start, start + (notes.end - notes.start), notes.pitch, notes.velocity, notes.channel
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the played copies")
    parser.add_argument("inputs", nargs="+", type=Path, metavar="FOLDER")
    parser.add_argument("--limit", type=int, help="at most N files, as eval-continuations takes")
    parser.add_argument("--spread-ms", type=float, default=15.0, help="timing spread (15 ms)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    written, skipped = 0, []
    for path in spread(find_files(args.inputs), args.limit):
        try:
            notes = merged_notes(path)
        except LivegenError as error:
            skipped.append(str(path))
            print(f"skipped {path}: {error}")
            continue
        if len(notes):
            copy = played(notes, args.spread_ms / 1000.0, rng)
            write_midi(args.out / f"{path.parent.name}-{path.name}", [("played", copy)])
            written += 1
    print(json.dumps({"bench": "played_copies", "written": written, "skipped": skipped,
                      "spread_ms": args.spread_ms, "out": str(args.out)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
