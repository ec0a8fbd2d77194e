"""How much of the prompt says what comes next: the continuation measure's distances between
the prompt's last W seconds and the real next 15 s, for several W, with no model at all.

    .venv/bin/python benchmarks/prompt_windows.py FOLDER... [--limit 24]
    .venv/bin/python benchmarks/prompt_windows.py --data DATA_DIR --split val [--limit 300]

The follow controls read the player's recent playing over a window (models/follow.py:
`window_seconds` for the texture and the rhythm plan's deck, `long_window_seconds` for the
key and the plan's memory). This asks the music which span predicts each statistic best, on
any set; the training corpus's val split is where a choice should come from, held-out sets
only check it. It also prints the build-up: the real continuation's rate and texture over
the prompt's last half (signed log2), which a model could only exploit by fitting a set.
Prints a table of medians, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from livegen.kernels.errors import LivegenError
from livegen.training.continuation_cli import held_out_files
from livegen.training.continuations import (
    EvalOptions,
    cut_excerpt,
    find_files,
    merged_notes,
    spread,
    window,
)
from livegen.training.music_stats import compare, mean_polyphony, notes_per_second

WINDOWS = (3.0, 5.0, 7.5, 10.0, 12.5, 15.0)
STATS = ("key", "density", "polyphony", "rhythm")


def distances(part, real, seconds: float, real_seconds: float) -> dict[str, float]:  # noqa: ANN001
    """The measure's distances (music_stats.compare) of `part`, the prompt's last `seconds`,
    from `real`: compare counts both over one span, so the density is put right for the two
    spans; no novelty (no prompt patterns)."""
    c = compare(part, real, part, seconds, real_seconds, known=set())
    density = c.density + np.log2(real_seconds / seconds)
    return {
        "key": c.key,
        "density": abs(density),
        "polyphony": abs(c.polyphony),
        "rhythm": c.rhythm,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="*", type=Path)
    parser.add_argument("--data", type=Path, help="a `data` folder: judge its --split")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    files = held_out_files(args.data, args.split) if args.data else find_files(args.inputs)
    options = EvalOptions()
    p, s = options.prompt_seconds, options.seconds
    rows: dict[str, dict[float, list[float]]] = {k: {w: [] for w in WINDOWS} for k in STATS}
    build_up: dict[str, list[float]] = {"density": [], "polyphony": []}
    for path in spread(files, args.limit):
        try:
            excerpt = cut_excerpt(str(path), merged_notes(path), options)
        except LivegenError:
            continue
        if isinstance(excerpt, str):
            continue
        for w in WINDOWS:
            for stat, value in distances(
                window(excerpt.prompt, p - w, p), excerpt.real, w, s
            ).items():
                rows[stat][w].append(value)
        half = window(excerpt.prompt, p / 2, p)
        rate = notes_per_second(excerpt.real, s) / notes_per_second(half, p / 2)
        build_up["density"].append(float(np.log2(rate)))
        texture = mean_polyphony(excerpt.real) / mean_polyphony(half)
        build_up["polyphony"].append(float(np.log2(texture)))
    result = {
        "files": len(build_up["density"]),
        "medians": {
            k: {str(w): float(np.median(v)) for w, v in r.items()} for k, r in rows.items()
        },
        "build_up": {k: float(np.median(v)) for k, v in build_up.items()},
    }
    print(f"{result['files']} files; medians of the distance to the next {s:g} s")
    print(f"{'W (s)':10}" + "".join(f"{w:>8g}" for w in WINDOWS))
    for stat in STATS:
        cells = "".join(f"{result['medians'][stat][str(w)]:8.3f}" for w in WINDOWS)
        print(f"{stat:10}{cells}")
    up = result["build_up"]
    print(
        f"next {s:g} s over the prompt's last half (log2): density {up['density']:+.3f}, "
        f"polyphony {up['polyphony']:+.3f}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
