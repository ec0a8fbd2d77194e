"""Training throughput of a config on this machine: target tokens/s (the L positions that get a
loss) and input tokens/s, for a few optimizer steps on random tokens.

    .venv/bin/python benchmarks/bench_train.py [--config configs/piano-small.toml] [--threads 1]

Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from livegen.kernels.vocab import NUM_EVENTS
from livegen.models.perceiver_ar import PerceiverAR
from livegen.training.config import load_run_config
from livegen.training.evaluate import latent_loss
from livegen.training.train import make_optimizer

ROOT = Path(__file__).resolve().parent.parent


def measure(config_path: Path, steps: int, batch: int | None, device: str) -> dict:
    run = load_run_config(config_path)
    cfg, mc = run.train, run.model
    batch = batch or cfg.batch_size
    model = PerceiverAR(mc).to(device).train()
    optimizer = make_optimizer(model, cfg)
    prefix = mc.context - mc.latents
    keep = round(cfg.prefix_keep * prefix) if cfg.prefix_keep < 1.0 else None
    autocast = cfg.bf16 and device.startswith("cuda")
    times = []
    for step in range(steps + 1):  # the first step warms up and is not counted
        window = torch.randint(0, NUM_EVENTS, (batch, mc.context + 1), device=device)
        tick = time.perf_counter()
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=autocast):
            logits = model(window[:, :-1], prefix_keep=keep)
            total, count = latent_loss(logits, window)
        (total / count).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - tick)
    per_step = sorted(times)[len(times) // 2]
    return {
        "config": str(
            config_path.relative_to(ROOT) if config_path.is_relative_to(ROOT) else config_path
        ),
        "parameters": mc.num_parameters(),
        "context": mc.context,
        "latents": mc.latents,
        "batch": batch,
        "prefix_keep": cfg.prefix_keep,
        "step_s": round(per_step, 4),
        "target_tokens_per_s": round(batch * mc.latents / per_step, 1),
        "input_tokens_per_s": round(batch * mc.context / per_step, 1),
        "threads": torch.get_num_threads(),
        "device": device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        type=Path,
        nargs="+",
        default=[ROOT / "configs/piano-small.toml", ROOT / "configs/piano-small-baseline.toml"],
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for path in args.config:
        r = measure(path.resolve(), args.steps, args.batch, args.device)
        results.append(r)
        print(
            f"{r['config']}: {r['parameters'] / 1e6:.2f}M params, N={r['context']} "
            f"L={r['latents']}, batch {r['batch']}: {r['step_s'] * 1e3:.0f} ms/step, "
            f"{r['target_tokens_per_s']:.0f} target tokens/s, "
            f"{r['input_tokens_per_s']:.0f} input tokens/s ({r['threads']} thread(s), {r['device']})"
        )
    print(json.dumps({"bench": "train", "results": results}))


if __name__ == "__main__":
    main()
