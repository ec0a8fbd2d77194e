"""What novelty costs the score, whoever plays: the loop floor made new with the fewest edits.

    .venv/bin/python benchmarks/novelty_price.py FOLDER... [--limit 24] [--novelty 0.8]

The continuation measure (training/music_stats.py) asks for a score at or below the loop
floor's (the prompt's last half, repeated) with novelty >= 0.8, where novelty is the share of
1-s windows whose onset pattern the prompt does not hold. On music that loops, the floor is
close to the real continuation because it repeats it, and a new second needs an interval the
player did not play there. This script prices that: starting from the loop floor, it edits
the loop the way the rhythm plan varies the player's rhythm (an onset left out, or a copy of
one put in half way to the next), one edit at a time, each time the one that makes a repeated
window new at the lowest score, until the file's novelty reaches the target. Greedy, so not
the least possible price. The score that picks the edit is taken two ways:

- made_new: against the loop itself, i.e. knowing only the prompt, as a model does: the
  price of novelty for a player who keeps to the prompt's proportions;
- made_new_knowing: against the real continuation, knowledge no model has (the edits then
  also move density and texture towards what the music did next);
- made_new_reordered: as made_new, with one more edit to choose from, the plan's new order:
  an onset (with its notes) moved so that the intervals before and after it trade places,
  which leaves the loop's interval histogram as it was.

Prints the medians of the loop floor and the three edited loops, and the real music's
novelty, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from livegen.kernels.errors import LivegenError
from livegen.kernels.onset_patterns import SLOT_STEPS
from livegen.kernels.time_steps import seconds_to_steps
from livegen.kernels.tokenizer import Notes
from livegen.training.continuations import (
    SCORED,
    EvalOptions,
    cut_excerpt,
    find_files,
    loop_floor,
    merged_notes,
    spread,
)
from livegen.training.music_stats import compare, known_patterns, new_share


def edits(notes: Notes, swaps: bool = False) -> list[Notes]:
    """Every single edit: one onset's notes left out, or a copy of them put in half way to the
    next onset (a split, at least a 50 ms slot from either side); with `swaps`, also an onset
    moved so that the intervals before and after it trade places (a new order)."""
    steps = seconds_to_steps(notes.start)
    onsets = np.unique(steps)
    left_out = [notes.take(np.flatnonzero(steps != s)) for s in onsets]
    out = list(left_out)
    for i in range(1, len(onsets) - 1) if swaps else ():
        before, s, after = onsets[i - 1 : i + 2]
        move = (after - s) - (s - before)
        if move:  # the onset's notes, moved: the rest is the loop without them
            moved = notes.take(np.flatnonzero(steps == s)).shifted(move / 100)
            out.append(Notes.joined([left_out[i], moved]))
    for s, after in zip(onsets[:-1], onsets[1:]):
        half = (after - s) // 2
        if min(half, after - s - half) < SLOT_STEPS:
            continue
        chord = notes.take(np.flatnonzero(steps == s))
        out.append(Notes.joined([notes, chord.shifted(half / 100)]))
    return out


def score(c) -> float:  # noqa: ANN001 - a Comparison
    """The measure's score for one file: the mean of the scored distances."""
    return float(np.mean([abs(getattr(c, k)) for k in SCORED]))


def made_new(  # noqa: ANN001 - excerpt
    loop: Notes, excerpt, options: EvalOptions, target: float, guide: Notes, swaps: bool = False
) -> Notes:
    """The loop with the cheapest edits until its novelty reaches `target`; each edit must
    raise the novelty. Cheapest: the lowest score against `guide` (the real continuation, or
    the loop itself: what the prompt alone says); `swaps`: new orders may be chosen too."""
    p, s = options.prompt_seconds, options.seconds
    known = known_patterns(excerpt.prompt, p)
    current, reached = loop, new_share(loop, known, s)
    while not reached >= target:
        best = None
        for candidate in edits(current, swaps):
            share = new_share(candidate, known, s)
            if not share > reached:
                continue
            cost = score(compare(candidate, guide, excerpt.prompt, p, s, known))
            if best is None or cost < best[0]:
                best = (cost, candidate, share)
        if best is None:
            break
        _, current, reached = best
    return current


def medians(rows: list) -> dict[str, float]:
    out = {k: float(np.median([abs(getattr(c, k)) for c in rows])) for k in SCORED}
    out["score"] = float(np.mean([out[k] for k in SCORED]))
    out["novelty"] = float(np.nanmedian([c.novelty for c in rows]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--novelty", type=float, default=0.8)
    args = parser.parse_args()
    options = EvalOptions()
    p, s = options.prompt_seconds, options.seconds
    loops, from_prompt, knowing, reordered, real_novelty, skipped = [], [], [], [], [], 0
    for path in spread(find_files(args.inputs), args.limit):
        try:
            excerpt = cut_excerpt(str(path), merged_notes(path), options)
        except LivegenError:
            excerpt = "unreadable"
        if isinstance(excerpt, str):
            skipped += 1
            continue
        loop = loop_floor(excerpt.prompt, p, s)
        loops.append(compare(loop, excerpt.real, excerpt.prompt, p, s))
        for guide, rows, swaps in (
            (loop, from_prompt, False),
            (excerpt.real, knowing, False),
            (loop, reordered, True),
        ):
            varied = made_new(loop, excerpt, options, args.novelty, guide, swaps)
            rows.append(compare(varied, excerpt.real, excerpt.prompt, p, s))
        real_novelty.append(compare(excerpt.real, excerpt.real, excerpt.prompt, p, s).novelty)
    result = {
        "files": len(loops),
        "skipped": skipped,
        "target_novelty": args.novelty,
        "loop": medians(loops),
        "made_new": medians(from_prompt),
        "made_new_knowing": medians(knowing),
        "made_new_reordered": medians(reordered),
        "real_novelty": float(np.nanmedian(real_novelty)),
    }
    print(f"{len(loops)} files ({skipped} skipped); medians; novelty target {args.novelty}")
    print(f"{'':20}" + "".join(f"{k:>10}" for k in (*SCORED, "score", "novelty")))
    for who in ("loop", "made_new", "made_new_knowing", "made_new_reordered"):
        row = result[who]
        print(f"{who:20}" + "".join(f"{row[k]:10.3f}" for k in (*SCORED, "score", "novelty")))
    print(f"real music's novelty: {result['real_novelty']:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
