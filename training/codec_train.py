"""The training loop of `livegen-train codec`: one process, or one rank of a torchrun job.

Each step draws a global batch of crops (a pure function of seed and step, see codec_data),
takes this rank's share, runs the codec with quantiser dropout (each example keeps a random
number of levels), and minimises multi-scale mel + multi-resolution STFT + waveform L1 + the
quantiser's own loss; with `[train.loss] adversarial = true`, discriminators join from
`adversarial_start` on. The decoder's output lags its input by config.delay samples, so
losses compare output[delay:] with input[:-delay].

Checkpoints, logs, Ctrl-C and `--resume` work as in `livegen-train ar` (same modules).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from livegen.kernels.errors import LivegenError
from livegen.models.codec import Codec
from livegen.models.codec_files import load_codec, save_codec
from livegen.training import distributed
from livegen.training.checkpointing import latest_checkpoint, load_checkpoint, save_checkpoint
from livegen.training.codec_config import CodecRunConfig
from livegen.training.codec_data import CropSampler, Sources, scan_sources
from livegen.training.codec_losses import SpectralLosses, perplexity, si_sdr
from livegen.training.train import (
    RUN_FILE,
    MetricsLog,
    TrainingState,
    TrainResult,
    catch_interrupts,
    lr_at,
    progress_bar,
    seed_everything,
)

SKIPPED_FILE = "skipped.txt"
BASE_FIELDS = [
    "step", "audio_s", "loss", "mel", "stft", "waveform", "quantizer", "adversarial",
    "feature_matching", "discriminator", "lr", "grad_norm", "s_per_step", "elapsed_s",
    "perplexity_min", "usage_min", "val_mel", "val_stft", "val_si_sdr",
]  # fmt: skip


@dataclass
class DataArgs:
    audio: list[Path]
    midi: list[Path]
    soundfonts: list[Path]

    def to_dict(self) -> dict[str, list[str]]:
        return {k: [str(Path(p).resolve()) for p in v] for k, v in self.__dict__.items()}


class Optimizers:
    """The codec's optimizer, and the discriminators with theirs: one state_dict for the
    checkpoint (tensors and plain values only, so it loads with weights_only)."""

    def __init__(self, codec: Codec, run: CodecRunConfig, device) -> None:
        cfg = run.train
        self.codec = torch.optim.AdamW(
            codec.parameters(),
            lr=cfg.lr,
            betas=(cfg.beta1, cfg.beta2),
            weight_decay=cfg.weight_decay,
        )
        self.discriminators = None
        if cfg.loss.adversarial:
            from livegen.training.codec_adversarial import Discriminators

            self.discriminators = Discriminators().to(device)
            self.disc = torch.optim.AdamW(
                self.discriminators.parameters(), lr=cfg.loss.discriminator_lr, betas=(0.8, 0.99)
            )

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"codec": self.codec.state_dict()}
        if self.discriminators is not None:
            state["disc_weights"] = self.discriminators.state_dict()
            state["disc"] = self.disc.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.codec.load_state_dict(state["codec"])
        if self.discriminators is not None and "disc" in state:
            self.discriminators.load_state_dict(state["disc_weights"])
            self.disc.load_state_dict(state["disc"])


def draw_levels(run: CodecRunConfig, step: int, count: int) -> torch.Tensor:
    """Quantiser dropout: levels per example of the global batch, from (seed, step)."""
    m = run.model
    rng = np.random.default_rng([run.train.seed, step + 1, 7])
    levels = np.full(count, m.levels)
    drop = rng.random(count) < m.level_dropout
    levels[drop] = rng.integers(m.min_levels, m.levels + 1, int(drop.sum()))
    return torch.from_numpy(levels)


def write_codec_run_file(run_dir: Path, run: CodecRunConfig, data: DataArgs, extra) -> None:
    info = {"kind": "codec", "config": run.to_dict(), "data": data.to_dict(), **extra}
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    tmp.replace(run_dir / RUN_FILE)


def _describe(sources: Sources) -> dict[str, Any]:
    return {
        "audio_files": len(sources.audio),
        "midi_files": len(sources.midi),
        "hours": round(sources.hours, 3),
    }


def train_codec(
    run_dir: Path,
    run: CodecRunConfig,
    data: DataArgs,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    init: Path | None = None,
) -> TrainResult:
    """Train (or continue) a codec run. `init` starts a fresh run from another run's weights
    (e.g. an adversarial phase after a spectral one)."""
    with distributed.process_group(device) as context:
        if context.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        return _train(Path(run_dir), run, data, context, resume, progress, stop_after, init)


def _validation_batch(train: Sources, val: Sources, data, run, samples) -> torch.Tensor:
    pool = val if (val.audio or val.midi) else train
    sampler = CropSampler(
        pool, data.soundfonts, run.train.data, run.model.sample_rate, samples, run.train.seed + 1
    )
    try:
        return sampler.batch(-1, run.train.data.val_segments)
    finally:
        sampler.close()


def init_weights(model: Codec, source: Path) -> Path:
    """Copy the weights (and codebooks) of a run, checkpoint or codec folder into model."""
    source = Path(source)
    found = latest_checkpoint(source)
    folder = (
        found / "model" if found else source / "model" if (source / "model").is_dir() else source
    )
    loaded = load_codec(folder)
    try:
        model.load_state_dict(loaded.state_dict())
    except RuntimeError:
        raise LivegenError(
            f"{folder}: its codec shape differs from this config's [model]"
        ) from None
    return folder


def _train(run_dir, run, data, context, resume, progress, stop_after, init) -> TrainResult:
    cfg, mcfg = run.train, run.model
    train_src, val_src = scan_sources(data.audio, data.midi, cfg.data.val_fraction)
    frames = max(1, round(cfg.data.segment_seconds * mcfg.sample_rate / mcfg.hop))
    samples = frames * mcfg.hop
    if cfg.batch_size % context.world:
        raise LivegenError(
            f"batch_size {cfg.batch_size} does not split over {context.world} processes"
        )
    micro = cfg.batch_size // context.world

    seed_everything(cfg.seed)
    model = Codec(mcfg).to(context.device)
    optimizers = Optimizers(model, run, context.device)
    state = TrainingState()
    found = latest_checkpoint(run_dir) if resume else None
    if resume and found is None and context.is_main:
        print(f"no checkpoint in {run_dir}: starting from scratch")
    if found is not None:
        state = load_checkpoint(found, model, optimizers, load_weights=load_codec)
    else:
        start = str(init_weights(model, init)) if init is not None else None
        if context.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            extra = {"device": str(context.device), "world": context.world, "init": start,
                     "train": _describe(train_src), "val": _describe(val_src)}  # fmt: skip
            write_codec_run_file(run_dir, run, data, extra)
    if context.is_main:
        text = "".join(line + "\n" for line in train_src.skipped)
        (run_dir / SKIPPED_FILE).write_text(text, encoding="utf-8")
        if train_src.skipped:
            print(
                f"skipped {len(train_src.skipped)} unreadable file(s), listed in {run_dir / SKIPPED_FILE}"
            )
    distributed.barrier(context)

    sampler = CropSampler(train_src, data.soundfonts, cfg.data, mcfg.sample_rate, samples, cfg.seed)
    val_batch = _validation_batch(train_src, val_src, data, run, samples).to(context.device)
    losses = SpectralLosses(mcfg.sample_rate).to(context.device)
    net = DistributedDataParallel(model, broadcast_buffers=False) if context.active else model
    fields = BASE_FIELDS + [f"ppl_{i}" for i in range(mcfg.levels)]
    log = MetricsLog(run_dir, state.step, context.is_main, fields)
    end_step = cfg.steps if stop_after is None else min(cfg.steps, state.step + stop_after)
    bar = progress_bar(cfg.steps, state.step, progress and context.is_main)
    saved: Path | None = None

    def checkpoint() -> Path | None:
        path = None
        if context.is_main:
            meta = {"step": state.step, "audio_seconds": state.tokens_seen / mcfg.sample_rate}
            path = save_checkpoint(
                run_dir,
                model,
                optimizers,
                state,
                cfg.keep_checkpoints,
                meta,
                save_weights=save_codec,
            )
        distributed.barrier(context)
        return path

    interrupted = False
    started = time.perf_counter()
    with catch_interrupts() as interrupt:
        model.train()
        while state.step < end_step:
            tick = time.perf_counter()
            row = _step(net, model, optimizers, sampler, losses, run, context, state.step, micro)
            state.step += 1
            state.tokens_seen += cfg.batch_size * samples  # audio samples trained on
            row.update(step=state.step, audio_s=round(state.tokens_seen / mcfg.sample_rate, 1),
                       s_per_step=round(time.perf_counter() - tick, 3),
                       elapsed_s=round(time.perf_counter() - started, 1))  # fmt: skip
            if state.step % cfg.eval_interval == 0 or state.step == cfg.steps:
                row.update(validate(model, losses, val_batch))
                state.val_nll = row["val_mel"]  # the shared state's validation slot: mel here
                model.train()
            if state.step % cfg.log_interval == 0 or "val_mel" in row or state.step <= 3:
                log.write(row)
            bar.update(1)
            bar.set_postfix(mel=f"{row['mel']:.3f}", ppl=f"{row['perplexity_min']:.0f}")
            stop = distributed.any_rank(context, interrupt.requested)
            if state.step % cfg.checkpoint_interval == 0 or state.step == end_step or stop:
                saved = checkpoint()
            if stop:
                interrupted = True
                break
    bar.close()
    log.close()
    sampler.close()
    if saved is None and context.is_main:
        saved = latest_checkpoint(run_dir)
    return TrainResult(state, interrupted, saved)


def _step(net, model, optimizers, sampler, losses, run, context, step, micro) -> dict[str, Any]:
    cfg, lc, delay = run.train, run.train.loss, run.model.delay
    for group in optimizers.codec.param_groups:
        group["lr"] = lr_at(step, cfg)
    first = context.rank * micro
    audio = sampler.batch(step, micro, offset=first).to(context.device)
    levels = draw_levels(run, step, cfg.batch_size)[first : first + micro].to(context.device)
    out = net(audio, levels)
    decoded, target = out.audio[:, delay:], audio[:, : audio.shape[1] - delay]
    mel, stft = losses.mel(decoded, target), losses.stft(decoded, target)
    wave = (decoded - target).abs().mean()
    q_weight = lc.commitment if run.model.quantizer == "rvq" else lc.diversity
    total = lc.mel * mel + lc.stft * stft + lc.waveform * wave + q_weight * out.quantizer_loss
    row: dict[str, Any] = {}
    adversarial = optimizers.discriminators is not None and step >= lc.adversarial_start
    if adversarial:
        total = total + _adversarial(optimizers, decoded, target, lc, row)
    optimizers.codec.zero_grad(set_to_none=True)
    total.backward()
    if adversarial and lc.freeze_encoder:
        for p in model.encoder.parameters():
            p.grad = None  # AdamW leaves parameters without a gradient alone
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
    optimizers.codec.step()
    row.update(
        loss=round(total.item(), 5), mel=round(mel.item(), 5), stft=round(stft.item(), 5),
        waveform=round(wave.item(), 6), quantizer=round(out.quantizer_loss.item(), 5),
        lr=lr_at(step, cfg), grad_norm=round(float(norm), 4),
    )  # fmt: skip
    row.update(_codebook_figures(out.codes, levels, run.model.codebook_size))
    return row


def _adversarial(optimizers, decoded, target, lc, row) -> torch.Tensor:
    from livegen.training.codec_adversarial import discriminator_loss, generator_losses

    disc = optimizers.discriminators
    d_loss = discriminator_loss(disc(target), disc(decoded.detach()))
    optimizers.disc.zero_grad(set_to_none=True)
    d_loss.backward()
    optimizers.disc.step()
    adv, matching = generator_losses(disc(target), disc(decoded))
    row.update(adversarial=round(adv.item(), 5), feature_matching=round(matching.item(), 5),
               discriminator=round(d_loss.item(), 5))  # fmt: skip
    return lc.adversarial_weight * adv + lc.feature_matching * matching


def _codebook_figures(codes: torch.Tensor, levels: torch.Tensor, size: int) -> dict[str, float]:
    """Perplexity per level over the frames of this batch that used the level."""
    row: dict[str, float] = {}
    ppls, usages = [], []
    for level in range(codes.shape[-1]):
        used = codes[levels > level, :, level]
        if used.numel() == 0:
            continue
        ppl, usage = perplexity(used, size)
        row[f"ppl_{level}"] = round(ppl, 1)
        ppls.append(ppl)
        usages.append(usage)
    row["perplexity_min"] = round(min(ppls), 1) if ppls else 0.0
    row["usage_min"] = round(min(usages), 4) if usages else 0.0
    return row


@torch.no_grad()
def validate(model: Codec, losses: SpectralLosses, batch: torch.Tensor) -> dict[str, float]:
    model.eval()
    out = model(batch)
    delay = model.config.delay
    decoded, target = out.audio[:, delay:], batch[:, : batch.shape[1] - delay]
    return {
        "val_mel": round(float(losses.mel(decoded, target)), 5),
        "val_stft": round(float(losses.stft(decoded, target)), 5),
        "val_si_sdr": round(float(si_sdr(decoded, target).mean()), 3),
    }
