"""One rule for every number a user gives livegen: finite, of the right kind, in range.

A `Bound` states what a value may be; `check` enforces it on a value already parsed (a
dataclass field from TOML, a preset, a settings file) and `option` turns it into an argparse
`type=` for the same value on a command line. Every command and every config dataclass uses
these, so `nan`, `inf`, a seed too large or a program of 500 gets the same one-line answer
wherever it is typed, before anything starts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from livegen.kernels.errors import BadValueError, LivegenError

Number = int | float


@dataclass(frozen=True)
class Bound:
    """What a number may be: integer or real (always finite), within low..high."""

    low: Number | None = None
    high: Number | None = None
    integer: bool = False
    low_open: bool = False  # low itself is excluded
    high_open: bool = False  # high itself is excluded

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        low, high = self.low, self.high
        if low is not None and high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            if not (self.low_open or self.high_open):
                return f"{kind} in {low}..{high}"
            return f"{kind} in {left}{low}, {high}{right}"
        if low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {high}"
        return kind

    def fits(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def check(self, name: str, value: object) -> Number:
        """`value` if it fits; else BadValueError('NAME must be ..., got VALUE')."""
        if not self.fits(value):
            raise BadValueError(f"{name} must be {self.describe()}, got {value!r}")
        return value  # type: ignore[return-value]

    def parse(self, text: str) -> Number:
        """A command-line string -> the number (BadValueError without the option's name)."""
        try:
            value: Number = int(text, 10) if self.integer else float(text)
        except ValueError:
            raise BadValueError(f"must be {self.describe()}, got {text!r}") from None
        if not self.fits(value):
            raise BadValueError(f"must be {self.describe()}, got {text!r}")
        return value

    def option(self) -> Callable[[str], Number]:
        """An argparse `type=`: argparse prints 'argument --X: must be ..., got ...', exit 2."""

        def convert(text: str) -> Number:
            try:
                return self.parse(text)
            except BadValueError as error:
                raise argparse.ArgumentTypeError(str(error)) from None

        convert.__name__ = self.describe()
        return convert


class UsageError(LivegenError):
    """A command line argparse rejected; its text is the whole one-line message."""


class OptionParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line ('PROG: error: ...', exit 2) raised as a
    UsageError the CLI's main() prints, so it also works in-process (tests) without a
    SystemExit and without the usage block burying the message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def check_fields(owner: object, bounds: dict[str, Bound], where: str = "") -> None:
    """check every named field of a dataclass against its bound (names prefixed by `where`)."""
    for name, bound in bounds.items():
        bound.check(f"{where}{name}", getattr(owner, name))


# Shared bounds: the same quantity is checked the same way everywhere.
SEED = Bound(0, 2**32 - 1, integer=True)  # what every RNG used here accepts
MIDI_BYTE = Bound(0, 127, integer=True)  # a program, a pitch, a controller number
MIDI_CHANNEL = Bound(0, 15, integer=True)
COUNT = Bound(1, integer=True)  # steps, tokens, windows, workers, intervals
NONNEGATIVE_INT = Bound(0, integer=True)
THREADS = Bound(1, 1024, integer=True)
POSITIVE = Bound(0, low_open=True)  # a finite real > 0
NONNEGATIVE = Bound(0)
FRACTION = Bound(0, 1, high_open=True)  # in [0, 1)
SECONDS = Bound(0, 24 * 3600, low_open=True)  # a duration someone could mean
TEMPERATURE = Bound(0, 100, low_open=True)  # sampling temperature (the jam UI's range is narrower)
PROBABILITY_CUT = Bound(0, 1, low_open=True)  # top-p: in (0, 1]
