"""How do an audio preset's continuations sound, in numbers? Against what the music really did.

For each MIDI file: render it (the preset's [render] soundfont and program), take its first
--prompt-seconds as the prompt, and compare over the next --seconds:

- real: what the piece really does next, rendered (the target);
- codec: the real continuation through the codec at the model's levels (the ceiling: the best
  any model of these tokens could sound);
- model: the preset's continuation of the prompt (seeded);
- noise: the model's codes drawn uniformly at random (the floor: what codes with no model sound
  like through this decoder).

Per segment: loudness (RMS dB), spectral flatness over 50 Hz - 8 kHz with a -60 dB floor (0 =
pure tones, 1 = white noise), spectral
centroid, the cosine between its chroma (energy per pitch class) and the prompt's (does it stay
in the prompt's key), the fraction of 16 ms frames that are silent (< -50 dB), and onsets per
second (peaks of the spectral flux: new energy, on average over the band, of more than e^0.5 in
log power from one 16 ms frame to the next: a struck note, not a held one).

    .venv/bin/python benchmarks/audio_continuations.py --preset audio-piano FILE.mid ...

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch


def _power(audio: np.ndarray, rate: int, n_fft: int = 2048, hop: int = 384) -> np.ndarray:
    if len(audio) < n_fft:
        audio = np.pad(audio, (0, n_fft - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) ** 2 + 1e-12


def chroma(audio: np.ndarray, rate: int) -> np.ndarray:
    power = _power(audio, rate).mean(axis=0)
    freqs = np.fft.rfftfreq(2048, 1 / rate)
    keep = (freqs > 55) & (freqs < 4200)
    classes = np.round(12 * np.log2(freqs[keep] / 440.0)).astype(int) % 12
    return np.bincount(classes, weights=power[keep], minlength=12)


def stats(audio: np.ndarray, prompt_chroma: np.ndarray, rate: int) -> dict[str, float]:
    power = _power(audio, rate)
    freqs = np.fft.rfftfreq(2048, 1 / rate)
    band = power[:, (freqs > 50) & (freqs < 8000)]
    band = band + 1e-6 * band.max(axis=1, keepdims=True)  # a -60 dB floor per frame
    flat = np.exp(np.mean(np.log(band), axis=1)) / np.mean(band, axis=1)
    centroid = (power * freqs).sum(axis=1) / power.sum(axis=1)
    frame_db = 10 * np.log10(np.mean(audio[: len(audio) // 384 * 384].reshape(-1, 384) ** 2, 1))
    log_power = np.log(band)
    flux = np.maximum(np.diff(log_power, axis=0), 0).mean(axis=1)  # new energy per frame
    peaks = (flux[1:-1] > flux[:-2]) & (flux[1:-1] >= flux[2:]) & (flux[1:-1] > 0.5)
    c = chroma(audio, rate)
    cosine = float(c @ prompt_chroma / (np.linalg.norm(c) * np.linalg.norm(prompt_chroma)))
    return {
        "rms_db": float(10 * np.log10(np.mean(audio**2) + 1e-12)),
        "flatness": float(np.median(flat)),
        "centroid_hz": float(np.median(centroid)),
        "chroma_cosine": cosine,
        "silent_frames": float(np.mean(frame_db < -50)),
        "onsets_per_s": float(peaks.sum() / (len(audio) / rate)),
    }


def main() -> None:
    from livegen.commands.continue_audio import decode_all, encode_prompt
    from livegen.models.audio_continuation import continue_codes
    from livegen.models.audio_preset import load_audio_models, load_audio_preset
    from livegen.models.sampling import SamplingParams
    from livegen.models.streaming import StreamingDecoder
    from livegen.training.render import render_midi

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE.mid")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--prompt-seconds", type=float, default=6.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write each segment as WAV here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = load_audio_preset(args.preset)
    loaded, codec = load_audio_models(preset, "cpu")
    levels, rate, hop = loaded.model.config.levels, codec.config.sample_rate, codec.config.hop
    params = SamplingParams.from_defaults(preset.sampling)
    frames = math.ceil(args.seconds * codec.config.frame_rate)
    rng = np.random.default_rng(args.seed)
    rows: dict[str, list[dict[str, float]]] = {"real": [], "codec": [], "model": [], "noise": []}
    for n, path in enumerate(args.files):
        total = args.prompt_seconds + args.seconds
        audio = render_midi(path, preset.render.soundfont, rate, preset.render.program, total)
        cut = int(args.prompt_seconds * rate) // hop * hop
        if len(audio) < cut + frames * hop:
            print(f"{path}: shorter than {total:.1f} s, skipped")
            continue
        prompt, real = audio[:cut], audio[cut : cut + frames * hop]
        codes, _ = encode_prompt(codec, audio[: cut + frames * hop], levels)
        base = codes[: cut // hop]
        result = continue_codes(StreamingDecoder(loaded.model), base, frames, params, seed=n)
        random = rng.integers(0, codec.config.codebook_size, size=(frames, levels))
        segments = {
            "real": real,
            "codec": decode_all(codec, codes)[cut:],
            "model": decode_all(codec, np.concatenate((base, result.codes)))[cut:],
            "noise": decode_all(codec, np.concatenate((base, random)))[cut:],
        }
        reference = chroma(prompt, rate)
        for name, segment in segments.items():
            rows[name].append(stats(segment, reference, rate))
            if args.out is not None:
                from livegen.training.audio_io import write_audio

                args.out.mkdir(parents=True, exist_ok=True)
                write_audio(args.out / f"{path.stem}-{name}.wav", segment, rate)
    keys = ["rms_db", "flatness", "centroid_hz", "chroma_cosine", "silent_frames", "onsets_per_s"]
    summary = {
        name: {k: round(float(np.mean([r[k] for r in rs])), 4) for k in keys}
        for name, rs in rows.items()
        if rs
    }
    print(f"{len(rows['real'])} files, prompt {args.prompt_seconds} s, next {args.seconds} s")
    print("segment  " + "  ".join(f"{k:>13s}" for k in keys))
    for name, values in summary.items():
        print(f"{name:8s} " + "  ".join(f"{values[k]:13.3f}" for k in keys))
    print(json.dumps({"bench": "audio_continuations", "preset": preset.name, **summary}))


if __name__ == "__main__":
    main()
