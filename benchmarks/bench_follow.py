"""What following the player costs the decode loop: the Follower's set-up once per continuation
or jam turn, its mask for every token, and the rhythm plan's work at every model onset, with the
plan's variation off and on, and the key quota and the register steer on beside them.

    .venv/bin/python benchmarks/bench_follow.py [--onsets 400] [--repeats 5]

Two prompts of 8 s: steady eighths (the plan varies almost every second of them) and a
player's mixed rhythm (20, 20 and 40 steps, chords of one to three notes). No model runs: the
model's onsets come where the plan asks for them, one note each, so only the follow's own cost
is timed (the decode step beside it: bench_decode_cpu.py). Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from livegen.benchmark import percentile
from livegen.kernels.tokenizer import Notes, encode_notes
from livegen.kernels.vocab import NOTE_OFF, NOTE_ON
from livegen.models.follow import Follower, FollowSettings
from livegen.models.sampling import SamplingParams


def prompt(intervals: list[int], chords: list[int]) -> tuple[list[int], int]:
    """8 s of onsets cycling through `intervals` (steps), `chords` notes each: (tokens, step)."""
    starts, pitches, t, k = [], [], 0, 0
    while t < 800:
        size = chords[k % len(chords)]
        starts += [t / 100] * size
        pitches += [60 + 4 * i for i in range(size)]
        t += intervals[k % len(intervals)]
        k += 1
    s = np.array(starts)
    notes = Notes(s, s + 0.1, pitches, [80] * len(s), [0] * len(s))
    return [int(x) for x in encode_notes(notes)], t


def run(
    tokens: list[int], step: int, variation: float, quota: bool, register: float, onsets: int
) -> dict[str, float]:
    """Times one Follower's set-up, then, at each of `onsets` model onsets, the mask and the
    bias for the token there (every token pays both) and the observe of the onset's notes
    (which draws the next onset and, with the key steer and `quota`, sets the next note's
    pitch-class bias, and with `register`, the register steer's tilt)."""
    settings = FollowSettings(
        rhythm_draw=True,
        rhythm_variation=variation,
        key_bias=3.0,
        key_quota=quota,
        register_steer=register,
    )
    t0 = time.perf_counter()
    follower = Follower(tokens, step, SamplingParams(), settings)
    setup = time.perf_counter() - t0
    plan = follower.plan
    masks, biases, observes = [], [], []
    for k in range(onsets):
        due = plan.due
        for pitch in [p for p, end in plan.ends.items() if end <= due]:
            follower.observe(NOTE_OFF + pitch, due)  # the model ends its notes on time
        t0 = time.perf_counter()
        follower.restrict(None, due)
        masks.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        follower.bias  # noqa: B018 - the steers' bias is read for every token
        biases.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        follower.observe(NOTE_ON + 60 + k % 12, due)
        for extra in range(1, plan.chord):
            follower.observe(NOTE_ON + 73 + extra, due)
        observes.append(time.perf_counter() - t0)
    masks.sort()
    biases.sort()
    observes.sort()
    return {
        "setup_ms": setup * 1e3,
        "mask_us_p50": percentile(masks, 50) * 1e6,
        "mask_us_p99": percentile(masks, 99) * 1e6,
        "bias_us_p50": percentile(biases, 50) * 1e6,
        "bias_us_p99": percentile(biases, 99) * 1e6,
        "onset_us_p50": percentile(observes, 50) * 1e6,
        "onset_us_p99": percentile(observes, 99) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onsets", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    prompts = {"steady": prompt([25], [1]), "mixed": prompt([20, 20, 40], [1, 2, 3])}
    results = {}
    for name, (tokens, step) in prompts.items():
        cases = ((0.0, False, 0.0), (1.0, False, 0.0), (1.0, True, 0.0), (1.0, True, 1.0))
        for variation, quota, register in cases:
            runs = [
                run(tokens, step, variation, quota, register, args.onsets)
                for _ in range(args.repeats)
            ]
            best = {key: min(r[key] for r in runs) for key in runs[0]}  # least disturbed run
            label = f"{name}, variation {variation:g}" + (", key quota" if quota else "")
            results[label + (", register steer" if register else "")] = best
    print(f"{'prompt, plan':<53} set-up ms  mask us p50/p99  bias us p50/p99  onset us p50/p99")
    for label, r in results.items():
        print(
            f"{label:<53} {r['setup_ms']:9.2f}  {r['mask_us_p50']:6.1f} / {r['mask_us_p99']:6.1f}"
            f"  {r['bias_us_p50']:6.1f} / {r['bias_us_p99']:6.1f}"
            f"  {r['onset_us_p50']:7.1f} / {r['onset_us_p99']:7.1f}"
        )
    print(json.dumps({"bench": "follow", "onsets": args.onsets, "results": results}))


if __name__ == "__main__":
    main()
