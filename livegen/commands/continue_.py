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

from livegen.commands.outputs import check_outputs
from livegen.kernels.errors import LivegenError
from livegen.kernels.values import SECONDS, SEED, THREADS
from livegen.models.preset import add_sampling_options, sampling_overrides

HELP = (
    "continue a MIDI file with a preset's model (MIDI out; optional WAV and piano roll), or, "
    "with an audio preset, a WAV or MIDI prompt as audio (WAV out)"
)

PROMPT_COLOUR = "#4a7ab5"
CONTINUATION_COLOUR = "#e07b39"


class ContinueError(LivegenError):
    """A setting or an output path `continue` cannot use."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prompt",
        type=Path,
        metavar="PROMPT.mid",
        help="the MIDI file to continue (an audio preset also takes a WAV)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUT.mid",
        help="MIDI file to write (an audio preset writes OUT.wav)",
    )
    parser.add_argument(
        "--seconds", type=SECONDS.option(), default=20.0, help="model time to generate (default 20)"
    )
    parser.add_argument("--seed", type=SEED.option(), default=0, help="sampling seed (default 0)")
    parser.add_argument("--preset", default="piano", help="preset name or .toml path")
    parser.add_argument("--wav", type=Path, metavar="OUT.wav", help="also render audio")
    parser.add_argument("--png", type=Path, metavar="ROLL.png", help="also draw a piano roll")
    add_sampling_options(parser)
    parser.add_argument(
        "--force", action="store_true", help="replace output files that already exist"
    )
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="ignore the preset's follow_* settings (controls taken from the prompt)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (default: cuda, then mps, then cpu), cpu, cuda, mps"
    )
    parser.add_argument(
        "--threads",
        type=THREADS.option(),
        default=1,
        help="CPU threads for torch (default 1: fastest here)",
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

    from livegen.kernels.midi_scan import unclosed_report
    from livegen.kernels.tokenizer import encode_performance, read_midi, sustained_notes
    from livegen.models.loading import load_preset_model
    from livegen.models.preset import load_preset
    from livegen.models.sampling import SamplingParams
    from livegen.models.streaming import StreamingDecoder

    if _is_audio_preset(args.preset):
        from livegen.commands import continue_audio

        return continue_audio.run(args)
    check_outputs(args.prompt, [args.output, args.wav, args.png], force=args.force)
    preset = load_preset(args.preset)
    performance = read_midi(args.prompt)
    if performance.unclosed_notes:
        print(
            f"livegen continue: {unclosed_report(args.prompt, performance.unclosed_notes)}",
            file=sys.stderr,
        )
    prompt = [int(t) for t in encode_performance(performance)]
    try:
        params = SamplingParams.from_defaults(preset.sampling, **sampling_overrides(args))
    except ValueError as error:
        raise ContinueError(str(error)) from None

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


def _is_audio_preset(name: str) -> bool:
    from livegen.models.preset import find_preset, preset_kind

    try:
        return preset_kind(find_preset(name)) == "audio"
    except LivegenError:
        return False  # load_preset says what is wrong with the name


def _write_outputs(args: argparse.Namespace, preset, prompt_notes, generated_notes) -> None:  # noqa: ANN001
    """Each output is written to a temporary file beside it and renamed into place, so it is
    complete or absent (a full disk is a WriteError naming it)."""
    from livegen.kernels.atomic_write import atomic_path
    from livegen.kernels.tokenizer import write_midi

    program = preset.sound.program
    with atomic_path(args.output) as tmp:
        write_midi(
            tmp,
            [("prompt", prompt_notes), (f"livegen {preset.name}", generated_notes)],
            programs=[program, program],
        )
    if args.wav is not None:
        from livegen.synth import note_events, render_wav

        rate = 48000
        events = []
        for channel, notes in ((0, prompt_notes), (1, generated_notes)):
            events += note_events(
                notes.start, notes.end, notes.pitch, notes.velocity, channel, rate
            )
        with atomic_path(args.wav) as tmp:
            render_wav(events, tmp, preset.sound.soundfont, {0: program, 1: program}, rate)
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
        with atomic_path(args.png) as tmp:
            draw_piano_roll(parts, tmp, title=f"{args.prompt.name} + livegen {preset.name}")
