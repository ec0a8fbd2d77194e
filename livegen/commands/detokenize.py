"""`livegen detokenize TOKENS.json -o OUT.mid`: write the notes of a token sequence as MIDI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from livegen.commands.outputs import check_outputs
from livegen.kernels.errors import TokenFileError

HELP = "write a token sequence (JSON ids or names, or names as text) as a MIDI file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "tokens",
        type=Path,
        metavar="TOKENS.json",
        help="a JSON list of token ids or names, or names separated by spaces (tokenize's output)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="OUT.mid", help="MIDI file to write"
    )


def read_token_file(path: Path) -> list[int]:
    """Token ids from a JSON list (ids or names) or whitespace-separated names/ids."""
    from livegen.kernels.vocab import VOCAB_SIZE, token_from_name

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TokenFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TokenFileError(f"{path}: cannot read ({error})") from None
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        items = text.split()
        if text.lstrip().startswith(("[", "{", '"')):
            raise TokenFileError(f"{path}: not valid JSON") from None
    if not isinstance(items, list):
        raise TokenFileError(f"{path}: expected a list of token ids or names")
    ids = []
    for position, item in enumerate(items):
        if isinstance(item, str) and item.lstrip("-").isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise TokenFileError(f"{path}: item {position} is not a token id or name: {item!r}")
        if isinstance(item, str):
            try:
                item = token_from_name(item)
            except ValueError as error:
                raise TokenFileError(f"{path}: item {position}: {error}") from None
        if not 0 <= item < VOCAB_SIZE:
            raise TokenFileError(
                f"{path}: item {position}: id {item} is outside 0..{VOCAB_SIZE - 1}"
            )
        ids.append(item)
    return ids


def run(args: argparse.Namespace) -> int:
    from livegen.kernels.atomic_write import atomic_path
    from livegen.kernels.tokenizer import tokens_to_midi

    check_outputs(args.tokens, [args.output])
    tokens = read_token_file(args.tokens)
    with atomic_path(args.output) as tmp:
        tokens_to_midi(tokens, tmp)
    return 0
