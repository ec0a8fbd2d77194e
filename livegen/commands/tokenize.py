"""`livegen tokenize FILE.mid`: print the performance tokens of a MIDI file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from livegen.commands.outputs import check_outputs

HELP = "print the performance tokens of a MIDI file (names, or ids with --json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("midi", type=Path, metavar="FILE.mid", help="a standard MIDI file")
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list of token ids instead of names"
    )
    parser.add_argument(
        "--drums", action="store_true", help="include drum tracks (channel 10); left out by default"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="TOKENS.json",
        help="also write the ids as a JSON list to this file (what `detokenize` reads)",
    )


def run(args: argparse.Namespace) -> int:
    from livegen.kernels.atomic_write import write_text
    from livegen.kernels.midi_scan import unclosed_report
    from livegen.kernels.tokenizer import encode_performance, read_midi
    from livegen.kernels.vocab import token_name

    check_outputs(args.midi, [args.output])
    performance = read_midi(args.midi, include_drums=args.drums)
    if performance.unclosed_notes:
        report = unclosed_report(args.midi, performance.unclosed_notes)
        print(f"livegen tokenize: {report}", file=sys.stderr)
    ids = [int(t) for t in encode_performance(performance)]
    if args.output is not None:
        write_text(args.output, json.dumps(ids) + "\n")
    # Names on one line, space separated: `detokenize` reads this back as well.
    print(json.dumps(ids) if args.json else " ".join(token_name(t) for t in ids))
    return 0
