"""`livegen-train eval-codec`: a codec against Opus on the same held-out clips, in one run.

Each clip (the first `seconds` of an audio file, or a MIDI crop rendered with the given
soundfonts) is taken at the codec's sample rate: that is the reference every system is
measured against. The codec encodes and decodes it through its streaming path, frame by
frame; Opus (opusenc --hard-cbr --music, opusdec) codes the same reference at its lowest
bitrate at or above the codec's (Opus stops at 6 kbps) and at twice that. Figures per clip
group and overall: multi-scale mel distance and multi-resolution STFT distance (the training
losses' definitions, lower is better), SI-SDR (dB), ViSQOL v3 audio mode (MOS-LQO, both
signals resampled to 48 kHz), and the codec's perplexity and usage per level.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livegen.kernels.errors import LivegenError
from livegen.models.codec_fast import fast_round_trip
from livegen.models.codec_preset import open_codec
from livegen.training.audio_io import AudioFileError, list_audio, read_audio, resample, write_audio
from livegen.training.codec_losses import SpectralLosses, perplexity, si_sdr

VISQOL_RATE = 48000
OPUS_FLOOR_KBPS = 6.0


@dataclass
class EvalOptions:
    audio: list[Path]
    midi: list[Path]
    soundfonts: list[Path]
    levels: int | None = None
    seconds: float = 10.0
    clips: int = 12
    visqol: bool = True
    opus: bool = True
    workers: int = 1


def load_clips(
    options: EvalOptions, sample_rate: int
) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    """Clip groups (one per folder) at the codec's rate, and the files that were skipped."""
    groups: dict[str, list[np.ndarray]] = {}
    skipped: list[str] = []
    for folder in options.audio:
        clips = []
        for path in list_audio([folder]):
            if len(clips) >= options.clips:
                break
            try:
                clip = read_audio(path, sample_rate, 0.0, options.seconds)
            except AudioFileError as error:
                skipped.append(str(error))
                continue
            if len(clip) >= sample_rate // 4:
                clips.append(clip)
        if clips:
            groups[Path(folder).name] = clips
    for folder in options.midi:
        groups[f"{Path(folder).name} (MIDI)"] = _midi_clips(folder, options, sample_rate, skipped)
    if not groups:
        raise LivegenError("no readable held-out clips")
    return groups, skipped


def _midi_clips(folder: Path, options: EvalOptions, sample_rate: int, skipped: list[str]):
    from livegen.training.codec_config import DataConfig
    from livegen.training.codec_data import CropSampler, scan_sources

    sources, _ = scan_sources([], [folder], 0.0)
    skipped.extend(sources.skipped)
    samples = int(options.seconds * sample_rate)
    sampler = CropSampler(sources, options.soundfonts, DataConfig(), sample_rate, samples, 1234)
    try:
        return [sampler.batch(i, 1).numpy()[0] for i in range(options.clips)]
    finally:
        sampler.close()


def opus_round_trip(audio: np.ndarray, sample_rate: int, kbps: float) -> np.ndarray:
    """Opus at `kbps` (hard CBR, tuned for music), decoded back at sample_rate, same length."""
    if shutil.which("opusenc") is None or shutil.which("opusdec") is None:
        raise LivegenError("opusenc/opusdec not found (Debian: apt install opus-tools)")
    with tempfile.TemporaryDirectory() as tmp:
        source, coded, decoded = Path(tmp, "in.wav"), Path(tmp, "x.opus"), Path(tmp, "out.wav")
        write_audio(source, audio, sample_rate)
        quiet = {"check": True, "capture_output": True}
        encode = ["opusenc", "--quiet", "--music", "--hard-cbr", "--bitrate", f"{kbps:g}"]
        subprocess.run([*encode, str(source), str(coded)], **quiet)
        subprocess.run(["opusdec", "--quiet", "--rate", "48000", str(coded), str(decoded)], **quiet)
        out = read_audio(decoded, sample_rate)
    return np.pad(out, (0, max(0, len(audio) - len(out))))[: len(audio)]


def _distances(ref: np.ndarray, deg: np.ndarray, losses: SpectralLosses) -> dict[str, float]:
    r, d = torch.from_numpy(ref)[None], torch.from_numpy(deg.astype(np.float32))[None]
    return {
        "mel": float(losses.mel(d, r)),
        "stft": float(losses.stft(d, r)),
        "si_sdr": float(si_sdr(d, r).mean()),
    }


_VISQOL = None


def visqol_score(pair: tuple[np.ndarray, np.ndarray, int]) -> float:
    global _VISQOL
    ref, deg, rate = pair
    if _VISQOL is None:
        from visqol import VisqolApi

        _VISQOL = VisqolApi()
        _VISQOL.create(mode="audio")
    r = resample(ref, rate, VISQOL_RATE).astype(np.float64)
    d = resample(deg.astype(np.float32), rate, VISQOL_RATE).astype(np.float64)
    return float(_VISQOL.measure_from_arrays(r, d, VISQOL_RATE).moslqo)


def _visqol_all(pairs: list, workers: int) -> list[float]:
    if workers <= 1:
        return [visqol_score(p) for p in pairs]
    from multiprocessing import get_context

    with get_context("spawn").Pool(workers) as pool:
        return pool.map(visqol_score, pairs, chunksize=1)


def evaluate_codec(spec: str | Path, options: EvalOptions) -> dict[str, Any]:
    model, where = open_codec(spec)
    cfg = model.config
    levels = options.levels or cfg.levels
    if not 1 <= levels <= cfg.levels:
        raise LivegenError(f"--levels must be 1..{cfg.levels}, got {levels}")
    groups, skipped = load_clips(options, cfg.sample_rate)
    losses = SpectralLosses(cfg.sample_rate)
    kbps = cfg.kbps(levels)
    opus_rates = [max(OPUS_FLOOR_KBPS, kbps)]
    opus_rates.append(2 * opus_rates[0])
    systems = ["codec"] + ([f"opus_{r:g}" for r in opus_rates] if options.opus else [])
    rows: list[dict[str, Any]] = []  # one per (group, clip, system)
    codes: dict[str, list[torch.Tensor]] = {group: [] for group in groups}
    compute, audio_seconds = 0.0, 0.0
    for group, clips in groups.items():
        for clip in clips:
            trip = fast_round_trip(model, clip, levels)
            codes[group].append(trip.codes[0])
            compute += trip.encode_seconds + trip.decode_seconds
            audio_seconds += len(clip) / cfg.sample_rate
            outputs = {"codec": trip.audio[0].numpy()}
            for rate in opus_rates if options.opus else []:
                outputs[f"opus_{rate:g}"] = opus_round_trip(clip, cfg.sample_rate, rate)
            for system, out in outputs.items():
                row = {"group": group, "system": system, **_distances(clip, out, losses)}
                row["pair"] = (clip, out, cfg.sample_rate)
                rows.append(row)
    if options.visqol:
        for row, score in zip(rows, _visqol_all([r["pair"] for r in rows], options.workers)):
            row["visqol"] = score

    # Perplexity grows with the variety of the audio it is counted on (a few clips of one
    # kind use a few regions of the codebook), so it is given per group as well as overall.
    def per_level(parts: list[torch.Tensor]) -> list[tuple[float, float]]:
        every = torch.cat(parts, dim=0)
        return [perplexity(every[:, k], cfg.codebook_size) for k in range(levels)]

    overall = per_level([c for part in codes.values() for c in part])
    report = {
        "codec": where,
        "sample_rate": cfg.sample_rate,
        "frame_rate": cfg.frame_rate,
        "levels": levels,
        "codebook_size": cfg.codebook_size,
        "kbps": round(kbps, 3),
        "latency_ms": round(cfg.latency_ms, 2),
        "opus_kbps": opus_rates if options.opus else [],
        "clips": sum(len(c) for c in groups.values()),
        "audio_seconds": round(audio_seconds, 1),
        "rtf_one_thread": round(compute / audio_seconds, 4),
        "perplexity": [round(p, 1) for p, _ in overall],
        "usage": [round(u, 4) for _, u in overall],
        "perplexity_by_group": {
            g: [round(p, 1) for p, _ in per_level(part)] for g, part in codes.items()
        },
        "groups": {g: _summary(rows, systems, g) for g in groups},
        "overall": _summary(rows, systems, None),
        "skipped": skipped,
    }
    return report


def _summary(rows: list[dict[str, Any]], systems: list[str], group: str | None) -> dict:
    out = {}
    for system in systems:
        mine = [r for r in rows if r["system"] == system and group in (None, r["group"])]
        keys = ["mel", "stft", "si_sdr"] + (["visqol"] if mine and "visqol" in mine[0] else [])
        out[system] = {k: round(float(np.mean([r[k] for r in mine])), 4) for k in keys}
    return out


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['codec']}: {report['kbps']} kbps ({report['levels']} levels x "
        f"{report['codebook_size']} codes at {report['frame_rate']:g} Hz), "
        f"latency {report['latency_ms']} ms, RTF {report['rtf_one_thread']} (one thread)",
        f"{report['clips']} clips, {report['audio_seconds']} s; perplexity per level "
        f"{report['perplexity']} (usage {report['usage']})",
    ]
    for name, table in [*report["groups"].items(), ("overall", report["overall"])]:
        lines.append(f"{name}:")
        if name in report["perplexity_by_group"]:
            lines.append(f"  perplexity per level {report['perplexity_by_group'][name]}")
        for system, figures in table.items():
            text = "  ".join(f"{k} {v:.3f}" for k, v in figures.items())
            lines.append(f"  {system:<10} {text}")
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} unreadable file(s)")
    return "\n".join(lines)
