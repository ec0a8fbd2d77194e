"""The training loop of `livegen-train ar`: one process, or one rank of a torchrun job.

Each step takes a global batch of random crops (N + 1 tokens) from the sampler, splits it
over ranks and micro-batches, and trains on the L latent positions with prefix dropout. The
loss is a sum over target tokens divided by the global target count, so K ranks with B/K
sequences each compute exactly what one process with B sequences does.

Everything random is either derived from (seed, step, sample) or saved in the checkpoint, so
`--resume` continues the same loss curve.
"""

from __future__ import annotations

import csv
import json
import math
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from livegen.kernels.atomic_write import ensure_writable_folder, write_text
from livegen.kernels.errors import LivegenError
from livegen.models.perceiver_ar import PerceiverAR
from livegen.training import distributed, guards
from livegen.training.audio_data import check_data_matches
from livegen.training.checkpointing import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from livegen.training.config import RunConfig, TrainConfig
from livegen.training.evaluate import latent_loss, window_nll
from livegen.training.sampler import WindowSampler, eval_windows
from livegen.training.shards import TokenShards, read_index
from livegen.training.warm_start import InitSource, load_init_weights

RUN_FILE = "run.json"
LOG_FILE = "log.csv"
LOG_FIELDS = ["step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "val_nll"]


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up to lr, then cosine decay to lr * min_lr_ratio at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    # Weight decay on matrices (and embeddings) only, not on norms: the usual GPT recipe.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    plain = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))


def prefix_generator(seed: int, step: int, skip_rows: int, prefix: int) -> torch.Generator:
    """The prefix-dropout draws of a step, advanced past the rows other ranks own.

    One stream per step, consumed row by row (the model draws [rows, prefix] uniforms), so
    the rows of any split of the global batch get the draws one process would give them.
    A CPU generator on every device: the CPU's draws come in sequence, so skipping rows is
    drawing them, where a CUDA generator's value depends on the shape of the whole draw.
    """
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + step) % (1 << 62))
    if skip_rows and prefix:
        torch.rand(skip_rows, prefix, generator=generator)
    return generator


@dataclass
class Interrupt:
    requested: bool = False


@contextmanager
def catch_interrupts() -> Iterator[Interrupt]:
    """Ctrl-C (or SIGTERM) asks the loop to stop after this step; a second Ctrl-C is abrupt."""
    flag = Interrupt()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: object) -> None:
        if flag.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.requested = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(ValueError):  # not the main thread: leave signals alone
            previous[sig] = signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class MetricsLog:
    """CSV always; TensorBoard event files too when torch.utils.tensorboard imports."""

    def __init__(
        self, run_dir: Path, resume_step: int, enabled: bool, fields: list[str] | None = None
    ) -> None:
        self.enabled = enabled
        self.fields = fields or LOG_FIELDS
        self.path = run_dir / LOG_FILE
        self.writer = None
        if not enabled:
            return
        rows = self._rows_before(resume_step)
        with open(self.path, "w", newline="", encoding="utf-8") as handle:
            out = csv.DictWriter(handle, self.fields, extrasaction="ignore")
            out.writeheader()
            out.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step + 1)
        except ImportError:
            self.writer = None

    def _rows_before(self, step: int) -> list[dict[str, str]]:
        # Rows logged after the checkpoint we resume from would be logged again: drop them.
        if step == 0 or not self.path.is_file():
            return []
        with open(self.path, newline="", encoding="utf-8") as handle:
            return [row for row in csv.DictReader(handle) if _step_of(row) <= step]

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            fields = self.fields
            csv.DictWriter(handle, fields).writerow({k: row.get(k, "") for k in fields})
        if self.writer is not None:
            for key, value in row.items():
                if key != "step" and value not in ("", None):
                    self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _step_of(row: dict[str, str]) -> float:
    """A row's step; a row cut short (the disk filled mid-write) sorts after every step."""
    try:
        return int(row["step"])
    except (KeyError, TypeError, ValueError):
        return math.inf


def read_log(run_dir: Path) -> list[dict[str, str]]:
    with open(Path(run_dir) / LOG_FILE, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@dataclass
class TrainResult:
    state: TrainingState
    interrupted: bool
    checkpoint: Path | None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def _batch_layout(config: TrainConfig, world: int) -> int:
    """Sequences per micro-batch; the global batch must split evenly."""
    parts = world * config.grad_accum
    if config.batch_size % parts:
        raise LivegenError(
            f"batch_size {config.batch_size} does not split over {world} process(es) x "
            f"{config.grad_accum} accumulation step(s)"
        )
    return config.batch_size // parts


def write_run_file(run_dir: Path, run: RunConfig, data_dir: Path, extra: dict[str, Any]) -> None:
    info = {"config": run.to_dict(), "data": str(Path(data_dir).resolve()), **extra}
    write_text(run_dir / RUN_FILE, json.dumps(info, indent=2) + "\n")


def note_data_change(run_dir: Path, data_dir: Path, summary: dict[str, Any], step: int) -> None:
    """A run resumed on other data (e.g. a rebuilt corpus): run.json says what it trains on
    now, and from which step, so an exported preset records the right data."""
    info = read_run_file(run_dir)
    data = str(Path(data_dir).resolve())
    if info.get("data") == data and info.get("data_summary") == summary:
        return
    history = info.setdefault("data_history", [])
    history.append({"until_step": step, "data": info.get("data"), "files": _files(info)})
    info["data"], info["data_summary"] = data, summary
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    tmp.replace(run_dir / RUN_FILE)


def _files(info: dict[str, Any]) -> Any:
    return (info.get("data_summary") or {}).get("files")


def read_run_file(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LivegenError(f"{run_dir}: not a training run (no {RUN_FILE})") from None


def train(
    run_dir: Path,
    run: RunConfig,
    data_dir: Path,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    init: InitSource | None = None,
) -> TrainResult:
    """Train (or continue) a run; returns where it stopped. Under torchrun, call on every rank.

    init: weights to start from (a warm start) when the run has no checkpoint yet; a resumed
    run continues from its own checkpoint and ignores it.
    """
    with distributed.process_group(device) as context:
        return _train(
            Path(run_dir), run, Path(data_dir), context, resume, progress, stop_after, init
        )


def _train(run_dir, run, data_dir, context, resume, progress, stop_after, init) -> TrainResult:
    cfg, model_cfg = run.train, run.model
    index = read_index(data_dir)
    check_data_matches(index, model_cfg, data_dir)
    if model_cfg.tokens == "audio" and cfg.augment.enabled:
        raise LivegenError(
            "[train.augment] transposes MIDI; an audio model needs [train.augment] enabled = false"
        )
    train_shards = TokenShards(data_dir, "train", index)
    val_shards = TokenShards(data_dir, "val", index)
    micro = _batch_layout(cfg, context.world)
    N, L = model_cfg.context, model_cfg.latents
    prefix = N - L
    keep = round(cfg.prefix_keep * prefix) if cfg.prefix_keep < 1.0 else None

    seed_everything(cfg.seed)
    torch.manual_seed(cfg.seed + context.rank)  # dropout differs per rank, as it should
    model = PerceiverAR(model_cfg).to(context.device)
    optimizer = make_optimizer(model, cfg)
    state = TrainingState()
    if not resume:
        guards.check_new_run(run_dir)  # every rank looks before rank 0 writes anything
    distributed.barrier(context)
    if context.is_main:
        ensure_writable_folder(run_dir, "run folder")
    found = latest_checkpoint(run_dir) if resume else None
    if resume and found is None and context.is_main:
        print(f"no checkpoint in {run_dir}: starting from scratch")
    if found is not None:
        state = load_checkpoint(found, model, optimizer)
        guards.apply_optimizer_settings(optimizer, cfg)
        if context.is_main:
            _say_changes(run_dir, cfg, state.step)
        if context.active:  # each rank's dropout stream, not rank 0's copy
            torch.manual_seed(cfg.seed + context.rank + 7919 * state.step)
        if context.is_main:
            note_data_change(run_dir, data_dir, index.summary, state.step)
    else:
        if init is not None:  # every rank loads the same weights: no broadcast needed
            load_init_weights(model, init)
        if context.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            extra = {
                "world": context.world,
                "device": str(context.device),
                "data_summary": index.summary,
            }
            if init is not None:
                extra["init"] = init.to_dict()
            write_run_file(run_dir, run, data_dir, extra)
    distributed.barrier(context)

    sampler = WindowSampler(train_shards, N + 1, cfg.seed, cfg.augment, model_cfg.pad_id)
    sampler.state.epoch, sampler.state.position = state.epoch, state.position
    val_windows = eval_windows(val_shards, N + 1, cfg.eval_windows)
    net = DistributedDataParallel(model) if context.active else model
    autocast = cfg.bf16 and context.device.type == "cuda"
    log = MetricsLog(run_dir, state.step, context.is_main)
    end_step = cfg.steps if stop_after is None else min(cfg.steps, state.step + stop_after)
    bar = progress_bar(cfg.steps, state.step, progress and context.is_main)
    saved: Path | None = None

    def checkpoint() -> Path | None:
        state.epoch, state.position = sampler.state.epoch, sampler.state.position
        path = None
        if context.is_main:
            meta = {"step": state.step, "tokens_seen": state.tokens_seen, "val_nll": state.val_nll}
            path = save_checkpoint(run_dir, model, optimizer, state, cfg.keep_checkpoints, meta)
        distributed.barrier(context)
        return path

    def validate() -> float | None:
        mine = val_windows[context.rank :: context.world]
        total, count = window_nll(
            model, val_shards, mine, batch_size=max(micro, 1), autocast=autocast
        )
        sums = torch.tensor([total, float(count)], dtype=torch.float64, device=context.device)
        distributed.all_reduce_sum(context, sums)
        return float(sums[0] / sums[1]) if sums[1] > 0 else None  # None: no validation data

    interrupted = False
    divergence: tuple[int, float, float] | None = None
    started = time.perf_counter()
    with catch_interrupts() as interrupt:
        model.train()
        while state.step < end_step:
            tick = time.perf_counter()
            loss_value, grad_norm = _step(
                net, optimizer, sampler, cfg, context, state.step, micro, keep, prefix, autocast
            )
            if not guards.step_is_finite(loss_value, grad_norm):  # the same on every rank
                divergence = (state.step + 1, loss_value, grad_norm)
                break
            state.step += 1
            state.tokens_seen += cfg.batch_size * L
            elapsed = time.perf_counter() - tick
            row: dict[str, Any] = {
                "step": state.step,
                "tokens": state.tokens_seen,
                "loss": loss_value,
                "lr": lr_at(state.step - 1, cfg),
                "grad_norm": round(grad_norm, 4),
                "tokens_per_s": round(cfg.batch_size * L / elapsed, 1),
                "elapsed_s": round(time.perf_counter() - started, 2),
            }
            if state.step % cfg.eval_interval == 0 or state.step == cfg.steps:
                state.val_nll = validate()
                if state.val_nll is not None:
                    row["val_nll"] = round(state.val_nll, 5)
            if state.step % cfg.log_interval == 0 or "val_nll" in row or state.step <= 3:
                log.write(row)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
            stop = distributed.any_rank(context, interrupt.requested)
            if state.step % cfg.checkpoint_interval == 0 or state.step == end_step or stop:
                saved = checkpoint()
            if stop:
                interrupted = True
                break
    bar.close()
    log.close()
    if divergence is not None:
        raise guards.diverged(*divergence, latest_checkpoint(run_dir))
    if saved is None and context.is_main:
        saved = latest_checkpoint(run_dir)
    return TrainResult(state, interrupted, saved)


def _say_changes(run_dir: Path, cfg: TrainConfig, step: int) -> None:
    changes = guards.record_resume_changes(run_dir, RUN_FILE, cfg.to_dict(), step)
    if changes:
        print(
            f"resuming at step {step} with changed [train] settings: {'; '.join(changes)} "
            f"(recorded in {run_dir / RUN_FILE})"
        )


def _step(net, optimizer, sampler, cfg, context, step, micro, keep, prefix, autocast):
    """One optimizer step over the global batch; returns (mean loss, gradient norm)."""
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    samples = sampler.take(cfg.batch_size)  # every rank draws the same global batch
    first = context.rank * cfg.grad_accum
    batches = [
        sampler.batch(samples[(first + m) * micro : (first + m + 1) * micro]).to(context.device)
        for m in range(cfg.grad_accum)
    ]
    L = sampler.length - 1 - prefix
    counts = torch.tensor(
        [float(sum(int((b[:, -L:] != sampler.pad).sum()) for b in batches))],
        device=context.device,
    )
    global_count = float(distributed.all_reduce_sum(context, counts).item())
    scale = context.world / max(global_count, 1.0)  # DDP averages over ranks
    loss_sum = torch.zeros((), device=context.device)
    for m, window in enumerate(batches):
        generator = prefix_generator(cfg.seed, step, (first + m) * micro, prefix)
        sync = m == cfg.grad_accum - 1 or not context.active
        with (
            nullcontext() if sync else net.no_sync(),
            torch.autocast(context.device.type, dtype=torch.bfloat16, enabled=autocast),
        ):
            logits = net(window[:, :-1], prefix_keep=keep, generator=generator)
            total, _ = latent_loss(logits, window, sampler.pad)
        (total * scale).backward()
        loss_sum += total.detach()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip or float("inf"))
    if torch.isfinite(norm):  # a non-finite gradient is never applied (the loop then stops)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    distributed.all_reduce_sum(context, loss_sum)
    return float(loss_sum) / max(global_count, 1.0), float(norm)


def progress_bar(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        disable=not enabled,
        unit="step",
        dynamic_ncols=True,
        desc="train",
    )
