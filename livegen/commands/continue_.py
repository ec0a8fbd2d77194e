"""`livegen continue PROMPT.mid -o OUT.mid`: continue a MIDI file with a preset's model.

The jam's engine and sampling, offline: the prompt is prefilled into the streaming decoder as
the player's notes, the model writes S seconds of model time under the preset's controls, and
the result is written as a two-track MIDI file (prompt, continuation); optionally rendered
through FluidSynth (--wav) and drawn as a piano roll (--png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from livegen.kernels.errors import LivegenError

HELP = "continue a MIDI file with a preset's model (MIDI out; optional WAV and piano roll)"

PROMPT_COLOUR = "#4a7ab5"
CONTINUATION_COLOUR = "#e07b39"


class ContinueError(LivegenError):
    """A setting or an output path `continue` cannot use."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", type=Path, metavar="PROMPT.mid", help="the MIDI file to continue")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT.mid", help="MIDI file to write"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="model time to generate (default 20)"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--preset", default="piano", help="preset name or .toml path")
    parser.add_argument("--wav", type=Path, metavar="OUT.wav", help="also render audio")
    parser.add_argument("--png", type=Path, metavar="ROLL.png", help="also draw a piano roll")
    parser.add_argument("--temperature", type=float, help="override the preset's temperature")
    parser.add_argument("--top-p", type=float, help="override the preset's top-p")
    parser.add_argument("--top-k", type=int, help="override the preset's top-k (0: off)")
    parser.add_argument("--min-p", type=float, help="override the preset's min-p (0: off)")
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="ignore the preset's follow_* settings (controls taken from the prompt)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (default: cuda, then mps, then cpu), cpu, cuda, mps"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for torch (default 1: fastest here)"
    )


def split_notes(tokens: list[int], prompt_seconds: float):  # noqa: ANN201 - Notes pair
    """Decode prompt + continuation as one stream (velocity carries over) and split the notes
    by onset: every prompt note starts before the prompt's end, every model note at or after."""
    from livegen.kernels.tokenizer import decode_tokens

    notes = decode_tokens(tokens)
    model = notes.start >= prompt_seconds - 1e-9
    return notes.take(np.flatnonzero(~model)), notes.take(np.flatnonzero(model))


def run(args: argparse.Namespace) -> int:
    import torch

    from livegen.kernels.tokenizer import encode_performance, read_midi, sustained_notes
    from livegen.models.loading import load_preset_model
    from livegen.models.preset import load_preset
    from livegen.models.sampling import SamplingParams
    from livegen.models.streaming import StreamingDecoder

    if args.seconds <= 0:
        raise ContinueError(f"--seconds must be > 0, got {args.seconds}")
    if args.threads < 1:
        raise ContinueError(f"--threads must be >= 1, got {args.threads}")
    preset = load_preset(args.preset)
    performance = read_midi(args.prompt)
    prompt = [int(t) for t in encode_performance(performance)]
    try:
        params = SamplingParams.from_defaults(
            preset.sampling,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            min_p=args.min_p,
        )
    except ValueError as error:
        raise ContinueError(str(error)) from None
    for path in (args.output, args.wav, args.png):
        if path is not None and not path.parent.is_dir():
            raise ContinueError(f"{path}: folder {path.parent} does not exist")

    torch.set_num_threads(args.threads)
    loaded = load_preset_model(preset, args.device)
    decoder = StreamingDecoder(loaded.model)

    from livegen.models.continuation import continue_tokens
    from livegen.models.follow import FollowSettings

    follow = None if args.no_follow else FollowSettings.from_defaults(preset.sampling)
    result = continue_tokens(decoder, prompt, params, args.seconds, seed=args.seed, follow=follow)
    _, generated_notes = split_notes([*result.prompt, *result.generated], result.prompt_seconds)
    prompt_notes = sustained_notes(performance).sorted()  # the user's own timing, pedal applied
    _write_outputs(args, preset, prompt_notes, generated_notes)

    rate = len(result.generated) / max(result.elapsed - result.prefill_seconds, 1e-9)
    print(
        f"prompt: {len(prompt_notes)} notes, {result.prompt_seconds:.2f} s, {len(prompt)} tokens; "
        f"continuation: {len(generated_notes)} notes, {result.seconds:.2f} s, "
        f"{len(result.generated)} tokens in {result.elapsed:.2f} s ({rate:.0f} tokens/s, "
        f"{loaded.describe()}) -> {args.output}"
    )
    if result.capped:
        print(
            f"livegen continue: stopped at the token cap after {result.seconds:.2f} s of model "
            "time (the model wrote many tokens without advancing time)",
            file=sys.stderr,
        )
    return 0


def _write_outputs(args: argparse.Namespace, preset, prompt_notes, generated_notes) -> None:  # noqa: ANN001
    from livegen.kernels.tokenizer import write_midi

    program = preset.sound.program
    try:
        write_midi(
            args.output,
            [("prompt", prompt_notes), (f"livegen {preset.name}", generated_notes)],
            programs=[program, program],
        )
    except OSError as error:
        raise ContinueError(f"{args.output}: cannot write ({error.strerror or error})") from None
    if args.wav is not None:
        from livegen.synth import note_events, render_wav

        rate = 48000
        events = []
        for channel, notes in ((0, prompt_notes), (1, generated_notes)):
            events += note_events(
                notes.start, notes.end, notes.pitch, notes.velocity, channel, rate
            )
        try:
            render_wav(events, args.wav, preset.sound.soundfont, {0: program, 1: program}, rate)
        except OSError as error:
            raise ContinueError(f"{args.wav}: cannot write ({error.strerror or error})") from None
    if args.png is not None:
        from livegen.pianoroll import RollPart, draw_piano_roll

        parts = [
            RollPart(
                "prompt", prompt_notes.start, prompt_notes.end, prompt_notes.pitch, PROMPT_COLOUR
            ),
            RollPart(
                "continuation",
                generated_notes.start,
                generated_notes.end,
                generated_notes.pitch,
                CONTINUATION_COLOUR,
            ),
        ]
        try:
            draw_piano_roll(parts, args.png, title=f"{args.prompt.name} + livegen {preset.name}")
        except OSError as error:
            raise ContinueError(f"{args.png}: cannot write ({error.strerror or error})") from None
