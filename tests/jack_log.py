"""Reading jackd's log for xruns. jackd writes, for each cycle some client did not finish in
time, one "client = NAME was not finished" line per late client, then "Process error". The
tests and benchmarks read those lines with a time stamp each (when they arrived, or the stamp
benchmarks/bench_jam.start_jack writes in front of every line); this turns them into xruns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LATE = "was not finished"
XRUN_END = "Process error"
TIMER_XRUN = "JackTimedDriver::Process XRun"  # the dummy driver's own timer fell behind


@dataclass(frozen=True)
class Xrun:
    at: float  # the time stamp of its first line
    late: frozenset[str]  # the clients jackd named as not finished


def late_client(line: str) -> str | None:
    """The client a "was not finished" line names, or None for any other line."""
    if LATE not in line or "client = " not in line:
        return None
    return line.split("client = ", 1)[1].split(f" {LATE}")[0]


def xruns(lines: Iterable[tuple[float, str]]) -> list[Xrun]:
    """The xruns in (time stamp, line) pairs, in order; one cut short by the end still counts."""
    found: list[Xrun] = []
    late: set[str] = set()
    began = 0.0
    for at, line in lines:
        client = late_client(line)
        if client is not None:
            if not late:
                began = at
            late.add(client)
        elif XRUN_END in line and late:
            found.append(Xrun(began, frozenset(late)))
            late = set()
    if late:
        found.append(Xrun(began, frozenset(late)))
    return found


def stamped(text: str, start: float = float("-inf"), end: float = float("inf")):  # noqa: ANN201
    """(stamp, line) for each "STAMP line" of a stamped log with start <= stamp <= end."""
    for row in text.splitlines():
        stamp, _, line = row.partition(" ")
        try:
            at = float(stamp)
        except ValueError:
            continue
        if start <= at <= end:
            yield at, line


def late_counts(found: Iterable[Xrun]) -> dict[str, int]:
    """How many xruns named each client as late."""
    counts: dict[str, int] = {}
    for xrun in found:
        for client in xrun.late:
            counts[client] = counts.get(client, 0) + 1
    return counts
