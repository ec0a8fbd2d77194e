"""`livegen`: the command line. Subcommands live in livegen.commands, one module each."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from livegen import __version__
from livegen.kernels.atomic_write import describe_os_error
from livegen.kernels.errors import LivegenError
from livegen.kernels.values import OptionParser, UsageError

# name on the command line -> module in livegen.commands
COMMANDS = {
    "tokenize": "tokenize",
    "detokenize": "detokenize",
    "continue": "continue_",
    "bench": "bench",
    "jam": "jam",
    "ports": "ports",
    "codec": "codec",
    "presets": "presets",
}


def build_parser() -> argparse.ArgumentParser:
    parser = OptionParser(
        prog="livegen",
        description="A real-time AI jam partner: a streaming Perceiver AR that plays with you.",
    )
    parser.add_argument("--version", action="version", version=f"livegen {__version__}")
    # `livegen` alone opens the jam's terminal UI; these override its saved settings for
    # one session (separate dests, so a subcommand's own --preset never collides).
    ui = parser.add_argument_group("the jam (no COMMAND: opens the terminal UI)")
    ui.add_argument(
        "--preset", dest="ui_preset", metavar="PRESET", help="preset name or .toml path"
    )
    ui.add_argument(
        "--in", dest="ui_in", metavar="PORT", help='MIDI input port, "virtual" or "none"'
    )
    ui.add_argument(
        "--out", dest="ui_out", metavar="PORT", help='MIDI output port, "virtual" or "none"'
    )
    ui.add_argument("--mode", dest="ui_mode", choices=("continue", "call", "accompany"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"livegen.commands.{module_name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:  # one line, exit 2, like every other bad input
        print(error, file=sys.stderr)
        return 2
    try:
        if args.command is None:
            return run_ui(args, parser)
        return int(args.run(args) or 0)
    except LivegenError as error:
        who = f"livegen {args.command}" if args.command else "livegen"
        print(f"{who}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a disk or device failure no command foresaw: still one line
        who = f"livegen {args.command}" if args.command else "livegen"
        print(f"{who}: error: {describe_os_error(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run_ui(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`livegen` with no COMMAND: the jam's terminal UI (help instead, off a terminal)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        parser.print_help()
        print("\nlivegen: the jam UI needs a terminal; run `livegen` in one.", file=sys.stderr)
        return 2
    from livegen.tui.launch import launch

    return launch(args.ui_preset, args.ui_in, args.ui_out, args.ui_mode)


if __name__ == "__main__":
    sys.exit(main())
