"""`livegen tokenize FILE.mid`: print the performance tokens of a MIDI file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
    from livegen.kernels.tokenizer import encode_file
    from livegen.kernels.vocab import token_name

    ids = [int(t) for t in encode_file(args.midi, include_drums=args.drums)]
    if args.output is not None:
        args.output.write_text(json.dumps(ids) + "\n")
    # Names on one line, space separated: `detokenize` reads this back as well.
    print(json.dumps(ids) if args.json else " ".join(token_name(t) for t in ids))
    return 0
