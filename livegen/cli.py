"""`livegen`: the command line. Subcommands live in livegen.commands, one module each."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from livegen import __version__
from livegen.kernels.errors import LivegenError

# name on the command line -> module in livegen.commands
COMMANDS = {
    "tokenize": "tokenize",
    "detokenize": "detokenize",
    "continue": "continue_",
    "bench": "bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livegen",
        description="A real-time AI jam partner: a streaming Perceiver AR that plays with you.",
    )
    parser.add_argument("--version", action="version", version=f"livegen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"livegen.commands.{module_name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except LivegenError as error:
        print(f"livegen {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
