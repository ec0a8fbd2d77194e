"""One module per `livegen` subcommand.

Each module exposes HELP (one line), `add_arguments(parser)` and `run(args) -> int`. Modules
import heavy dependencies (torch, numba) inside `run`, so `livegen --help` stays instant.
"""
