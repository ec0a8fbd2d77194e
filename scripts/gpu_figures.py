"""Reading what a GPU-check step printed: its figures (the last JSON line, or pytest's summary
counts) and the short text the table shows for it. scripts/gpu_check.py runs the steps."""

from __future__ import annotations

import json
import re
from typing import Any


def last_json_object(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def pytest_counts(text: str) -> tuple[dict[str, int], str]:
    """The counts of pytest's last summary line ("3 passed, 1 skipped in 2.1s") and the line."""
    for line in reversed(text.splitlines()):
        found = PYTEST_COUNT.findall(line)
        if found and (" in " in line or "no tests ran" in line):
            counts = {("errors" if k.startswith("error") else k): int(n) for n, k in found}
            return counts, line.strip(" =")
    return {}, ""


def lookup(figures: dict[str, Any], dotted: str) -> Any:
    value: Any = figures
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def describe(figures: dict[str, Any], show: dict[str, str]) -> str:
    if isinstance(figures.get("summary"), str):
        return figures["summary"]
    parts = []
    for label, dotted in show.items():
        value = lookup(figures, dotted)
        if isinstance(value, float):
            value = f"{value:.3g}"
        parts.append(f"{label} {value if value is not None else '?'}")
    return ", ".join(parts)
