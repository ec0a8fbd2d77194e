"""Steps of the GPU check (scripts/gpu_plan.toml) that are more than one existing command. Each
prints one JSON line last (with a "summary" string for the table); scripts/gpu_check.py reads it.

    python scripts/gpu_tasks.py bench-presets --device cuda
    python scripts/gpu_tasks.py train --work DIR --steps 300 --device cuda [--fp32] [--nproc 2]
    python scripts/gpu_tasks.py codec --device cuda [--seconds 10 --batch 16]
    python scripts/gpu_tasks.py continue --work DIR --device cuda   # needs symusic and mido
    python scripts/gpu_tasks.py make-data DIR --pieces 200

Needs only what a CUDA machine's ready-made Python has (torch, numpy, numba): the training data
is made here from random tunes through the tokenizer kernel (no MIDI parser, no music21), and
the run config is written as plain TOML text (no tomli_w).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TRAIN_CONFIG = REPO / "configs" / "piano-small.toml"  # the shipped preset's architecture


# ---- bench-presets ----------------------------------------------------------------------------


def bench_presets(device: str, tokens: int) -> dict[str, Any]:
    """`livegen bench --json` on every shipped MIDI preset, with the CUDA graph and without, and
    on every audio preset (the model's tokens/s against the codec frames it must feed)."""
    from livegen.models.preset import SHIPPED_DIR, list_presets

    results: dict[str, Any] = {}
    lines = []
    for name in list_presets(SHIPPED_DIR, "midi"):
        results[name] = {
            "graph": livegen_bench(name, device, tokens),
            "eager": livegen_bench(name, device, tokens, "--no-cuda-graph"),
        }
        graph, eager = results[name]["graph"], results[name]["eager"]
        # run_bench falls back to the eager step when capture fails, and says so in its note.
        failed = " (capture FAILED, eager measured)" if graph["note"] else ""
        lines.append(
            f"{name}: graph p50 {graph['ms_per_token_p50']:.3f} ms{failed}, eager p50 "
            f"{eager['ms_per_token_p50']:.3f} ms, recompute {eager['recompute_ms_per_token']:.2f} ms"
        )
    for name in list_presets(SHIPPED_DIR, "audio"):
        audio = results[name] = livegen_bench(name, device, tokens)
        lines.append(
            f"{name}: p50 {audio['ms_per_token_p50']:.3f} ms, "
            f"{audio['delivered_tokens_per_s']:,.0f} audio tokens/s for "
            f"{audio['needed_tokens_per_s']:,.0f} needed (x{audio['realtime_factor']:.1f})"
        )
    return {"presets": results, "summary": "; ".join(lines)}


def livegen_bench(name: str, device: str, tokens: int, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "livegen", "bench", "--preset", name]
    # --quantize none: an int8 preset is how a preset says "on a CPU, in int8"; on a GPU it runs
    # in the GPU's own precision (with --device auto it would too).
    command += ["--device", device, "--quantize", "none", "--tokens", str(tokens), "--json"]
    done = subprocess.run([*command, *extra], cwd=REPO, capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} {' '.join(extra)} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- codec -------------------------------------------------------------------------------------


def probe_signal(seconds: float, rate: int) -> np.ndarray:
    """Tones, a glide and a little noise: the codec's cost does not depend on what it hears, but
    its codes on the device should match the CPU's on a signal with something in it."""
    t = np.arange(int(seconds * rate)) / rate
    glide = np.sin(2 * np.pi * (220 + 80 * t) * t)
    tones = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((262, 330, 392, 523)))
    noise = np.random.default_rng(0).standard_normal(len(t)) * 0.01
    return (0.2 * glide + 0.1 * tones + noise).astype(np.float32)


def codec_figures(preset: str, device: str, seconds: float, batch: int) -> dict[str, Any]:
    """The codec on the device: whole clips (offline, as data building encodes) and frame by
    frame (as the live path runs), real-time factor and audio tokens/s, each against the same
    work on the CPU in this run; and whether the device's codes are the CPU's."""
    import copy
    import time

    import torch

    from livegen.models.codec import stream_round_trip
    from livegen.models.codec_fast import fast_round_trip
    from livegen.models.codec_preset import open_codec

    torch.set_num_threads(1)
    cpu_model, where = open_codec(preset)
    cfg = cpu_model.config
    audio = torch.from_numpy(probe_signal(seconds, cfg.sample_rate))[None]
    length = audio.shape[1] // cfg.hop * cfg.hop
    clips = audio[:, :length].repeat(batch, 1)
    model = copy.deepcopy(cpu_model).to(device)  # the same weights, read from disk once

    def sync() -> None:  # GPU work is queued: a time is only a time once it has run
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(work) -> tuple[Any, float]:
        sync()
        tick = time.perf_counter()
        value = work()
        sync()
        return value, time.perf_counter() - tick

    on = clips.to(device)
    timed(lambda: model.decode(model.encode(on)))  # warm-up: kernels, allocator
    codes, encode_s = timed(lambda: model.encode(on))
    _, decode_s = timed(lambda: model.decode(codes))
    stream = stream_round_trip(model, audio.to(device))  # times each frame, waiting for it
    fast = fast_round_trip(cpu_model, audio[0].numpy())
    reference = cpu_model.encode(audio[:, :length])
    agree = float((codes[:1].cpu() == reference).float().mean())
    frames = codes.shape[1] * batch
    clip_seconds = seconds * batch

    def rtf(spent: float, span: float) -> float:
        return round(spent / span, 5)

    figures = {
        "codec": where,
        "device": str(next(model.parameters()).device),
        "seconds": seconds,
        "batch": batch,
        "levels": cfg.levels,
        "frame_rate": cfg.frame_rate,
        "offline_encode_rtf": rtf(encode_s, clip_seconds),
        "offline_decode_rtf": rtf(decode_s, clip_seconds),
        "offline_encode_tokens_per_s": round(frames * cfg.levels / encode_s),
        "stream_encode_rtf": rtf(stream.encode_seconds, seconds),
        "stream_decode_rtf": rtf(stream.decode_seconds, seconds),
        "cpu_stream_encode_rtf": rtf(fast.encode_seconds, seconds),
        "cpu_stream_decode_rtf": rtf(fast.decode_seconds, seconds),
        "codes_agree_with_cpu": round(agree, 4),
    }
    figures["summary"] = (
        f"offline x{batch}: encode RTF {figures['offline_encode_rtf']:.4f} "
        f"({figures['offline_encode_tokens_per_s']:,} tokens/s), decode RTF "
        f"{figures['offline_decode_rtf']:.4f}; frame by frame: encode "
        f"{figures['stream_encode_rtf']:.3f}, decode {figures['stream_decode_rtf']:.3f} "
        f"(CPU, one thread: {figures['cpu_stream_encode_rtf']:.3f}, "
        f"{figures['cpu_stream_decode_rtf']:.3f}); codes as the CPU's: {agree:.1%}"
    )
    return figures


# ---- continue -------------------------------------------------------------------------------


def continue_file(work: Path, device: str, seconds: float) -> dict[str, Any]:
    """`livegen continue` on a random tune: the offline jam path (sampling, grammar) on the
    device. Reads and writes MIDI, so it needs symusic and mido (the plan checks first)."""
    from livegen.kernels.tokenizer import write_midi

    work.mkdir(parents=True, exist_ok=True)
    prompt, out = work / "prompt.mid", work / "continued.mid"
    write_midi(prompt, [("piano", random_tune(np.random.default_rng(7), 120))])
    command = [sys.executable, "-m", "livegen", "continue", str(prompt), "-o", str(out)]
    command += ["--device", device, "--seconds", str(seconds)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    print(done.stdout.strip())
    found = re.search(r"(\d+) tokens in ([\d.]+) s \((\d+) tokens/s, ([^)]*)\)", done.stdout)
    if found is None or not out.is_file():
        raise SystemExit("livegen continue printed no rate or wrote no file")
    tokens, seconds_taken, rate, where = found.groups()
    return {
        "tokens": int(tokens),
        "seconds": float(seconds_taken),
        "tokens_per_s": int(rate),
        "device": where,
        "summary": f"{tokens} tokens in {seconds_taken} s, {rate} tokens/s with sampling ({where})",
    }


# ---- training data from random tunes ----------------------------------------------------------


def random_tune(rng: np.random.Generator, notes: int):
    """A tune with chords, rests and varied velocity: tokens like real playing's, values not."""
    from livegen.kernels.tokenizer import Notes

    gaps = rng.choice([0.05, 0.1, 0.2, 0.3, 0.6], size=notes)
    start = np.cumsum(gaps) - gaps[0]
    pitch = np.clip(60 + np.cumsum(rng.integers(-4, 5, size=notes)), 30, 96)
    velocity = rng.integers(30, 120, size=notes)
    end = start + gaps * rng.uniform(0.5, 2.0, size=notes)
    chord = rng.random(notes) < 0.3
    start = np.concatenate((start, start[chord]))
    end = np.concatenate((end, end[chord]))
    pitch = np.concatenate((pitch, pitch[chord] - rng.choice([3, 4, 7], size=int(chord.sum()))))
    velocity = np.concatenate((velocity, velocity[chord]))
    return Notes(start, end, pitch, velocity, np.zeros(len(start), dtype=np.int64)).sorted()


def make_data(out: Path, pieces: int, seed: int = 0) -> dict[str, Any]:
    """A `livegen-train data` folder (shards + index) of random tunes."""
    from livegen.kernels.tokenizer import encode_notes
    from livegen.training.shards import (
        DataIndex,
        Piece,
        assign_splits,
        summarize,
        token_stats,
        write_index,
        write_shards,
    )

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens, made = {}, []
    for i in range(pieces):
        body = encode_notes(random_tune(rng, int(rng.integers(300, 900))))
        digest = f"{rng.integers(1 << 62):016x}{i:08x}"
        notes, seconds = token_stats(body)
        made.append(Piece(f"tune{i:04d}", digest, "train", len(body), notes, seconds))
        tokens[digest] = body
    assign_splits(made, 0.05, 0.0)
    shards = write_shards(out, made, lambda p: tokens[p.hash])
    index = DataIndex(made, shards, summarize(made, 0, 0))
    write_index(out, index)
    return index.summary


# ---- train ------------------------------------------------------------------------------------


def toml_text(tables: dict[str, dict[str, Any]]) -> str:
    """Flat TOML for [model], [train], [train.augment]: numbers, bools and strings only."""
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        for key, value in table.items():
            if isinstance(value, dict):
                continue
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def run_config(steps: int, batch: int, bf16: bool) -> str:
    data = tomllib.loads(TRAIN_CONFIG.read_text(encoding="utf-8"))
    train = data["train"]
    augment = train.pop("augment", {})
    train.update(
        steps=steps,
        batch_size=batch,
        bf16=bf16,
        warmup_steps=min(train.get("warmup_steps", 100), steps // 4),
        eval_interval=steps,  # one validation, at the end
        eval_windows=16,
        checkpoint_interval=steps,  # one checkpoint, at the end (saving is timed too)
        log_interval=10,
    )
    return toml_text({"model": data["model"], "train": train, "train.augment": augment})


def train(work: Path, steps: int, batch: int, device: str, bf16: bool, nproc: int) -> dict:
    data = work / "data"
    if not (data / "index.json").is_file():
        make_data(data, pieces=300)
    tag = f"{'bf16' if bf16 else 'fp32'}-x{nproc}"
    config = work / f"{tag}.toml"
    config.write_text(run_config(steps, batch, bf16), encoding="utf-8")
    run = work / f"run-{tag}"
    args = ["--config", str(config), "--data", str(data), "--out", str(run)]
    args += ["--device", device, "--no-progress"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command = [*launcher, f"--nproc_per_node={nproc}", "-m", "livegen.training", "ar", *args]
    else:
        command = [sys.executable, "-m", "livegen.training", "ar", *args]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, check=True)
    return train_figures(run, tag)


def train_figures(run: Path, tag: str) -> dict[str, Any]:
    with open(run / "log.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    steady = [float(r["tokens_per_s"]) for r in rows if int(r["step"]) > 10] or [
        float(r["tokens_per_s"]) for r in rows
    ]
    val = [float(r["val_nll"]) for r in rows if r.get("val_nll")]
    figures = {
        "run": tag,
        "device": info.get("device"),
        "world": info.get("world"),
        "model": info["config"]["model"],
        "batch_size": info["config"]["train"]["batch_size"],
        "steps": int(rows[-1]["step"]),
        "elapsed_s": float(rows[-1]["elapsed_s"]),
        "tokens_per_s_median": statistics.median(steady),
        "loss_first": float(rows[0]["loss"]),
        "loss_last": float(rows[-1]["loss"]),
        "val_nll": val[-1] if val else None,
    }
    figures["summary"] = (
        f"{tag}: {figures['steps']} steps in {figures['elapsed_s']:.0f} s, "
        f"{figures['tokens_per_s_median']:,.0f} target tokens/s (median), loss "
        f"{figures['loss_first']:.2f} -> {figures['loss_last']:.2f}"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="task", required=True)
    bench = sub.add_parser("bench-presets", help="livegen bench on the shipped model presets")
    bench.add_argument("--device", default="cuda")
    bench.add_argument("--tokens", type=int, default=512)
    fit = sub.add_parser("train", help="livegen-train ar on random tunes; tokens/s")
    fit.add_argument("--work", type=Path, required=True, help="scratch folder")
    fit.add_argument("--steps", type=int, default=300)
    fit.add_argument("--batch", type=int, default=64, help="global batch (sequences)")
    fit.add_argument("--device", default="cuda")
    fit.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    fit.add_argument("--nproc", type=int, default=1, help="processes (torchrun) on this machine")
    codec = sub.add_parser("codec", help="the codec's speed on the device, against the CPU")
    codec.add_argument("--preset", default="codec-24k")
    codec.add_argument("--device", default="cuda")
    codec.add_argument("--seconds", type=float, default=10.0, help="length of the test clip")
    codec.add_argument("--batch", type=int, default=16, help="clips encoded at once, offline")
    cont = sub.add_parser("continue", help="livegen continue on a random tune")
    cont.add_argument("--work", type=Path, required=True, help="scratch folder")
    cont.add_argument("--device", default="cuda")
    cont.add_argument("--seconds", type=float, default=30.0, help="model time to generate")
    data = sub.add_parser("make-data", help="a data folder of random tunes")
    data.add_argument("out", type=Path)
    data.add_argument("--pieces", type=int, default=200)
    args = parser.parse_args(argv)
    if args.task == "bench-presets":
        result = bench_presets(args.device, args.tokens)
    elif args.task == "train":
        result = train(args.work, args.steps, args.batch, args.device, not args.fp32, args.nproc)
    elif args.task == "codec":
        result = codec_figures(args.preset, args.device, args.seconds, args.batch)
    elif args.task == "continue":
        result = continue_file(args.work, args.device, args.seconds)
    else:
        summary = make_data(args.out, args.pieces)
        result = {"data": summary, "summary": f"{summary['tokens']:,} tokens"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
