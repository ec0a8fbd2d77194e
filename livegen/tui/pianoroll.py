"""A scrolling piano roll: pitch up, time to the right, now at the right edge.

Each text row shows two pitches with half blocks (upper half: the higher pitch), so a 20-row
pane spans 40 semitones. The pitch window follows the notes: it moves only when a note falls
outside it, so the picture does not jump about while you play in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from livegen.controls import RollNote
from livegen.tui.keyboard import note_name

PLAYER_COLOUR = "#4fc3f7"  # light blue
MODEL_COLOUR = "#ffb74d"  # orange
GRID_BG = "#1c1c1c"  # rows holding a C, so the eye finds its place
GUTTER = 4  # columns for the note names on the left


def choose_bottom(notes: Sequence[RollNote], span: int, bottom: int) -> int:
    """The lowest pitch shown (even, so every row is one pair), given the last one used.

    All the notes if they fit; else the player's, with as many of the model's as fit beside
    them (what you check is what you played, and a model answering two octaves away would
    otherwise pull the window off your hands); else the newest note. The window stays put
    while what it must show is in it."""
    if not notes:
        return bottom
    players = [n for n in notes if n.owner == "player"]
    for group in (notes, players):
        if not group:
            continue
        low = min(n.pitch for n in group)
        high = max(n.pitch for n in group)
        if bottom <= low and high < bottom + span:
            return bottom
        if high - low < span:
            centre = _clamped((low + high) // 2 - span // 2, span)
            holding = [b for b in range(high - span + 1, low + 1) if b == _clamped(b, span)]
            if group is notes or not holding:
                return centre
            return max(holding, key=lambda b: (_shown(notes, b, span), -abs(b - centre)))
    newest = max(players or notes, key=lambda n: n.start)
    return _clamped(newest.pitch - span // 2, span)


def _shown(notes: Sequence[RollNote], bottom: int, span: int) -> int:
    return sum(bottom <= n.pitch < bottom + span for n in notes)


def _clamped(bottom: int, span: int) -> int:
    bottom = max(0, min(128 - span, bottom)) if span <= 128 else 0
    return bottom - bottom % 2


PLAYER, MODEL = 1, 2  # cell owners; 0 is an empty half
_OWNERS = {"player": PLAYER, "model": MODEL}
_COLOUR = {PLAYER: PLAYER_COLOUR, MODEL: MODEL_COLOUR}
_LABEL = Style(dim=True)


def roll_cells(
    notes: Sequence[RollNote], now: float, columns: int, height: int, seconds: float, bottom: int
) -> tuple[list[bytearray], list[bytearray]]:
    """Owners of the upper and the lower half of every cell, row by row (row 0 at the top)."""
    step = seconds / columns
    start = now - seconds
    top_pitch = bottom + 2 * height - 1
    upper = [bytearray(columns) for _ in range(height)]
    lower = [bytearray(columns) for _ in range(height)]
    # the model's notes first, so the player's win a shared cell: they are what you check
    for note in sorted(notes, key=lambda n: n.owner == "player"):
        if not bottom <= note.pitch <= top_pitch or note.start > now:
            continue
        end = now if note.end is None else min(note.end, now)
        if end <= start:
            continue
        first = max(0, int((note.start - start) / step))
        last = min(columns - 1, int((end - start) / step))
        if last < first:
            continue
        offset = note.pitch - bottom
        halves = upper if offset % 2 else lower  # odd offset: the upper half of its row
        halves[height - 1 - offset // 2][first : last + 1] = bytes((_OWNERS[note.owner],)) * (
            last - first + 1
        )
    return upper, lower


@lru_cache(maxsize=64)
def _cell_style(top: int, low: int, c_row: bool) -> tuple[str, Style]:
    """The character and style that draw one cell (cached: a frame reuses a handful)."""
    background = GRID_BG if c_row else None
    if not top and not low:
        return " ", Style(bgcolor=background)
    if not low:
        return "▀", Style(color=_COLOUR[top], bgcolor=background)
    if not top:
        return "▄", Style(color=_COLOUR[low], bgcolor=background)
    return "▀", Style(color=_COLOUR[top], bgcolor=_COLOUR[low])


def draw_roll(
    notes: Sequence[RollNote],
    now: float,
    width: int,
    height: int,
    seconds: float,
    bottom: int,
) -> list[Strip]:
    """The roll as `height` strips of `width` cells: a gutter of names, then time columns.
    Runs of equal cells become one segment, so a frame is a few hundred segments at most."""
    columns = max(1, width - GUTTER)
    upper, lower = roll_cells(notes, now, columns, height, seconds, bottom)
    top_pitch = bottom + 2 * height - 1
    strips = []
    for row in range(height):
        high = top_pitch - 2 * row
        c_row = high % 12 == 0 or (high - 1) % 12 == 0
        label = note_name(high if high % 12 == 0 else high - 1) if c_row else ""
        segments = [Segment(f"{label:<{GUTTER - 1}}│", _LABEL)]
        cells = list(zip(upper[row], lower[row]))
        run_start = 0
        for col in range(1, columns + 1):
            if col == columns or cells[col] != cells[run_start]:
                char, style = _cell_style(*cells[run_start], c_row)
                segments.append(Segment(char * (col - run_start), style))
                run_start = col
        strips.append(Strip(segments, GUTTER + columns))
    return strips


@dataclass(frozen=True)
class RollFrame:
    """What the roll shows: the notes of its window and the session time at its right edge.

    An empty roll looks the same at any time, so an empty frame carries no time: one empty
    frame equals the next, and a reactive attribute holding them does not fire while idle."""

    now: float = 0.0  # first: frames are compared field by field, and time moves most
    notes: tuple[RollNote, ...] = ()

    @classmethod
    def of(cls, notes: Sequence[RollNote], now: float) -> RollFrame:
        return cls(now=now, notes=tuple(notes)) if notes else cls()


class PianoRoll(Widget):
    """Draws its `frame` (a reactive attribute: a new frame repaints, an equal one does not).
    Drawn with the line API from strips made once per frame (no rich Text in between)."""

    DEFAULT_CSS = """
    PianoRoll { height: 1fr; min-height: 6; }
    """

    frame: reactive[RollFrame] = reactive(RollFrame)

    def __init__(self, seconds: float = 8.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds
        self.bottom = 48  # C3 at the bottom until notes say otherwise
        self._strips: list[Strip] = []
        self._drawn: tuple[RollFrame, int, int] | None = None  # what _strips show

    @property
    def notes(self) -> tuple[RollNote, ...]:
        return self.frame.notes

    def lines(self) -> list[Strip]:
        """The frame as strips, made once per frame and size (render_line asks per row)."""
        frame, width, height = self.frame, self.size.width, self.size.height
        drawn = self._drawn
        if drawn is None or drawn[0] is not frame or drawn[1:] != (width, height):
            if width <= GUTTER or height <= 0:
                self._strips = []
            else:
                self.bottom = choose_bottom(frame.notes, 2 * height, self.bottom)
                self._strips = draw_roll(
                    frame.notes, frame.now, width, height, self.seconds, self.bottom
                )
            self._drawn = (frame, width, height)
        return self._strips

    def render_line(self, y: int) -> Strip:
        lines = self.lines()
        return lines[y] if 0 <= y < len(lines) else Strip.blank(self.size.width)
