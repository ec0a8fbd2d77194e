"""Held-out NLL of two models on exactly the same target tokens: does the long context help?

`livegen-train eval` scores each run on its own windows (N + 1 tokens, loss on the last L), so
a model with N = 1024 and one with N = 128 are scored on different positions. Here both score
the same targets: the last L tokens of the LONG model's test windows. The short model reads
only the last (its own N) tokens before each target; the long model reads up to its N.

    .venv/bin/python benchmarks/compare_context.py runs/piano runs/baseline --data data/music21

Prints both NLLs and their difference, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from livegen.models.checkpoint import load_model
from livegen.models.perceiver_ar import PerceiverAR
from livegen.training.checkpointing import require_checkpoint
from livegen.training.evaluate import latent_loss
from livegen.training.sampler import eval_windows
from livegen.training.shards import TokenShards


def load_run(run: Path) -> PerceiverAR:
    return load_model(require_checkpoint(run) / "model")


@torch.no_grad()
def nll_on_targets(model: PerceiverAR, windows: np.ndarray, targets: int, batch: int) -> float:
    """Mean NLL of the last `targets` tokens of each window [W, T+1] under model."""
    n = model.config.context
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        rows = torch.from_numpy(windows[i : i + batch, -(n + 1) :].astype(np.int64))
        logits = model(rows[:, :-1])[:, -targets:]
        loss, k = latent_loss(logits, rows, model.config.pad_id)
        total, count = total + float(loss), count + int(k)
    return total / max(count, 1)


@torch.no_grad()
def nll_by_quarter(model: PerceiverAR, windows: np.ndarray, targets: int, batch: int) -> list:
    """Mean NLL of the same targets in four blocks by position (first quarter of the targets
    first): a Perceiver AR's first latents see their nearest past only through the
    cross-attention, its last ones through the self-attention too."""
    n = model.config.context
    sums, count = np.zeros(targets), 0
    for i in range(0, len(windows), batch):
        rows = torch.from_numpy(windows[i : i + batch, -(n + 1) :].astype(np.int64))
        logits = model(rows[:, :-1])[:, -targets:].float()
        goal = rows[:, -targets:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), goal, reduction="none")
        sums += nll.sum(0).numpy()
        count += rows.shape[0]
    return [round(float(q.mean() / max(count, 1)), 4) for q in np.array_split(sums, 4)]


@torch.no_grad()
def nll_per_level(model: PerceiverAR, windows: np.ndarray, targets: int, batch: int) -> list:
    """An audio model's mean NLL of the same targets, per codec level of the target."""
    c = model.config
    sums, counts = np.zeros(c.levels), np.zeros(c.levels)
    for i in range(0, len(windows), batch):
        rows = torch.from_numpy(windows[i : i + batch, -(c.context + 1) :].astype(np.int64))
        logits = model(rows[:, :-1])[:, -targets:].float()
        goal = rows[:, -targets:]
        nll = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), goal.flatten(), reduction="none"
        )
        level = goal.flatten() // c.codebook_size
        for k in range(c.levels):
            picked = level == k
            sums[k] += float(nll[picked].sum())
            counts[k] += int(picked.sum())
    return [round(float(s / max(n, 1)), 4) for s, n in zip(sums, counts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("long_run", type=Path)
    parser.add_argument("short_run", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--windows", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    long_model, short_model = load_run(args.long_run), load_run(args.short_run)
    lc, sc = long_model.config, short_model.config
    if sc.context > lc.context:
        raise SystemExit("the first run must have the longer context")
    targets = min(lc.latents, sc.latents)
    shards = TokenShards(args.data, args.split)
    samples = eval_windows(shards, lc.context + 1, args.windows)
    rows = [shards.window(s.shard, s.start, lc.context + 1) for s in samples]
    windows = np.stack([r for r in rows if r.shape[0] == lc.context + 1])

    result = {
        "bench": "compare_context",
        "split": args.split,
        "windows": int(windows.shape[0]),
        "targets": int(windows.shape[0] * targets),
        "long": {"run": str(args.long_run), "context": lc.context, "latents": lc.latents},
        "short": {"run": str(args.short_run), "context": sc.context, "latents": sc.latents},
    }
    if lc.tokens == "audio":  # how much sound each context covers
        from livegen.training.shards import read_index

        rate = read_index(args.data).summary["tokens_kind"]["frame_rate"] * lc.levels
        for side, c in (("long", lc), ("short", sc)):
            result[side]["seconds"] = round(c.context / rate, 3)
            result[side]["latent_seconds"] = round(c.latents / rate, 3)
    result["long"]["nll"] = nll_on_targets(long_model, windows, targets, args.batch)
    result["short"]["nll"] = nll_on_targets(short_model, windows, targets, args.batch)
    result["long_minus_short"] = result["long"]["nll"] - result["short"]["nll"]
    if lc.tokens == "audio":
        for side, model in (("long", long_model), ("short", short_model)):
            result[side]["nll_per_level"] = nll_per_level(model, windows, targets, args.batch)
            print(f"{side:5s} NLL per codec level: {result[side]['nll_per_level']}")
    for side, model in (("long", long_model), ("short", short_model)):
        result[side]["nll_by_quarter"] = nll_by_quarter(model, windows, targets, args.batch)
        print(f"{side:5s} NLL by quarter of the targets: {result[side]['nll_by_quarter']}")
    for side in ("long", "short"):
        r = result[side]
        covers = f" ({r['seconds']:.1f} s of audio)" if "seconds" in r else ""
        print(
            f"{side:5s} N={r['context']:5d}{covers} L={r['latents']:4d}: {r['nll']:.4f} nats/token"
        )
    print(f"same {result['targets']} {args.split} targets; long - short = "
          f"{result['long_minus_short']:+.4f} nats/token")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
