"""`livegen continue PROMPT.wav|PROMPT.mid -o OUT.wav --preset AUDIO_PRESET`: continue audio.

The prompt (a MIDI prompt is first rendered through FluidSynth as the preset's [render] says)
is encoded by the preset's codec, its frames prefilled into the model, and the model writes
`--seconds` of new frames under the level mask (models/audio_continuation.py). The output is
the prompt as it was (its whole frames) followed by the codec's decoding of the continuation,
at the codec's sample rate, mono; the same for the same seed.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from livegen.commands.outputs import check_outputs
from livegen.kernels.errors import LivegenError

MIDI_SUFFIXES = {".mid", ".midi", ".smf", ".kar"}
SEAM_SECONDS = 0.005  # crossfade from the prompt as it was into the codec's continuation


def prompt_audio(path: Path, preset, sample_rate: int) -> np.ndarray:  # noqa: ANN001
    """The prompt at the codec's rate, mono: a recording read, a MIDI file rendered."""
    if path.suffix.lower() in MIDI_SUFFIXES:
        from livegen.training.render import render_midi

        return render_midi(path, preset.render.soundfont, sample_rate, preset.render.program)
    from livegen.training.audio_io import read_audio

    return read_audio(path, sample_rate)


def encode_prompt(codec, audio: np.ndarray, levels: int) -> tuple[np.ndarray, int]:  # noqa: ANN001
    """(codes [P, levels] of the prompt's whole frames, the samples they cover)."""
    import torch

    hop = codec.config.hop
    frames = len(audio) // hop
    if frames == 0:
        raise LivegenError(f"the prompt is shorter than one codec frame ({hop} samples)")
    whole = np.ascontiguousarray(audio[: frames * hop], dtype=np.float32)
    with torch.no_grad():
        codes = codec.encode(torch.from_numpy(whole)[None], levels)[0].numpy()
    return codes, frames * hop


def splice(prompt: np.ndarray, decoded: np.ndarray, start: int, sample_rate: int) -> np.ndarray:
    """prompt[:start] then decoded[start:], with a short crossfade ending at `start`."""
    fade = min(int(SEAM_SECONDS * sample_rate), start)
    out = np.concatenate((prompt[:start], decoded[start:])).astype(np.float32)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        seg = slice(start - fade, start)
        out[seg] = prompt[seg] * (1 - ramp) + decoded[seg] * ramp
    return out


def decode_all(codec, codes: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """Codes [T, k] -> T * hop samples aligned with the input (the codec's delay removed)."""
    import torch

    with torch.no_grad():
        audio = codec.decode(torch.from_numpy(codes.astype(np.int64))[None])[0].numpy()
    delay = codec.config.delay
    out = np.zeros(len(codes) * codec.config.hop, dtype=np.float32)
    body = audio[delay:]
    out[: len(body)] = body[: len(out)]
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from livegen.models.audio_continuation import continue_codes
    from livegen.models.audio_preset import load_audio_models, load_audio_preset
    from livegen.models.preset import sampling_overrides
    from livegen.models.sampling import SamplingParams
    from livegen.models.streaming import StreamingDecoder
    from livegen.training.audio_io import write_audio

    if args.wav is not None or args.png is not None:
        raise LivegenError("an audio preset writes audio: give the WAV as -o (no --wav/--png)")
    if args.output.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise LivegenError(f"{args.output}: an audio preset writes .wav (or .flac, .ogg)")
    check_outputs(args.prompt, [args.output], force=args.force)
    preset = load_audio_preset(args.preset)
    try:
        params = SamplingParams.from_defaults(preset.sampling, **sampling_overrides(args))
    except ValueError as error:
        raise LivegenError(str(error)) from None
    torch.set_num_threads(args.threads)
    loaded, codec = load_audio_models(preset, args.device)
    rate, hop = codec.config.sample_rate, codec.config.hop
    audio = prompt_audio(args.prompt, preset, rate)
    codes, covered = encode_prompt(codec, audio, loaded.model.config.levels)
    frames = math.ceil(args.seconds * codec.config.frame_rate)
    decoder = StreamingDecoder(loaded.model)
    result = continue_codes(decoder, codes, frames, params, seed=args.seed)
    decoded = decode_all(codec, np.concatenate((result.prompt_codes, result.codes)))
    out = splice(audio[:covered], decoded, covered, rate)
    write_audio(args.output, out, rate)
    generate = result.elapsed - result.prefill_seconds
    speed = result.tokens / max(generate, 1e-9)
    needed = codec.config.frame_rate * result.codes.shape[1]
    print(
        f"prompt: {covered / rate:.2f} s, {codes.size} tokens; continuation: "
        f"{len(result.codes) * hop / rate:.2f} s, {result.tokens} tokens in {generate:.2f} s "
        f"({speed:.0f} tokens/s, {speed / needed:.2f}x real time, {loaded.describe()}) "
        f"-> {args.output}"
    )
    return 0
