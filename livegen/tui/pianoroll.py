"""A scrolling piano roll: pitch up, time to the right, now at the right edge.

Each text row shows two pitches with half blocks (upper half: the higher pitch), so a 20-row
pane spans 40 semitones. The pitch window follows the notes: it moves only when a note falls
outside it, so the picture does not jump about while you play in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from livegen.controls import RollNote
from livegen.tui.keyboard import note_name

PLAYER_COLOUR = "#4fc3f7"  # light blue
MODEL_COLOUR = "#ffb74d"  # orange
COLOURS = {"player": PLAYER_COLOUR, "model": MODEL_COLOUR}
GRID_BG = "#1c1c1c"  # rows holding a C, so the eye finds its place
GUTTER = 4  # columns for the note names on the left


def choose_bottom(notes: Sequence[RollNote], span: int, bottom: int) -> int:
    """The lowest pitch shown (even, so every row is one pair), given the last one used."""
    if not notes:
        return bottom
    low = min(n.pitch for n in notes)
    high = max(n.pitch for n in notes)
    if bottom <= low and high < bottom + span:
        return bottom
    if high - low < span:  # centre what is playing
        bottom = (low + high) // 2 - span // 2
    else:  # too wide to fit: follow the newest note
        newest = max(notes, key=lambda n: n.start)
        bottom = newest.pitch - span // 2
    bottom = max(0, min(128 - span, bottom)) if span <= 128 else 0
    return bottom - bottom % 2


def draw_roll(
    notes: Sequence[RollNote],
    now: float,
    width: int,
    height: int,
    seconds: float,
    bottom: int,
) -> list[Text]:
    """The roll as `height` lines of `width` cells: a gutter of names, then time columns."""
    columns = max(1, width - GUTTER)
    step = seconds / columns
    start = now - seconds
    # cells[row][col] -> owner of the upper and the lower pitch of that row
    top_pitch = bottom + 2 * height - 1
    cells: list[list[list[str | None]]] = [
        [[None, None] for _ in range(columns)] for _ in range(height)
    ]
    for note in notes:
        if not bottom <= note.pitch <= top_pitch:
            continue
        end = now if note.end is None else min(note.end, now)
        first = max(0, int((note.start - start) / step))
        last = min(columns - 1, int((end - start) / step))
        if end <= start or note.start > now or last < first:
            continue
        offset = note.pitch - bottom
        row = height - 1 - offset // 2
        half = 0 if offset % 2 else 1  # odd offset: the upper half
        for col in range(first, last + 1):
            # the player's notes win a shared cell: they are what the musician checks
            if cells[row][col][half] != "player":
                cells[row][col][half] = note.owner
    lines = []
    for row in range(height):
        upper = top_pitch - 2 * row
        lower = upper - 1
        lines.append(_line(cells[row], upper, lower))
    return lines


def _line(cells: list[list[str | None]], upper: int, lower: int) -> Text:
    c_row = upper % 12 == 0 or lower % 12 == 0
    label = note_name(upper if upper % 12 == 0 else lower) if c_row else ""
    text = Text(f"{label:<{GUTTER - 1}}", style="dim")
    text.append("│", style="dim")
    background = GRID_BG if c_row else None
    for top, bottom in cells:
        if top is None and bottom is None:
            text.append(" ", style=Style(bgcolor=background))
        elif bottom is None:
            text.append("▀", style=Style(color=COLOURS.get(top), bgcolor=background))
        elif top is None:
            text.append("▄", style=Style(color=COLOURS.get(bottom), bgcolor=background))
        else:
            text.append("▀", style=Style(color=COLOURS.get(top), bgcolor=COLOURS.get(bottom)))
    return text


class PianoRoll(Widget):
    """Shows the notes given to `show`; the app feeds it the engine's roll about 15 times/s."""

    DEFAULT_CSS = """
    PianoRoll { height: 1fr; min-height: 6; }
    """

    def __init__(self, seconds: float = 8.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds
        self.notes: list[RollNote] = []
        self.now = 0.0
        self.bottom = 48  # C3 at the bottom until notes say otherwise

    def show(self, notes: Sequence[RollNote], now: float) -> None:
        self.notes = list(notes)
        self.now = now
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if width <= GUTTER or height <= 0:
            return Text("")
        self.bottom = choose_bottom(self.notes, 2 * height, self.bottom)
        lines = draw_roll(self.notes, self.now, width, height, self.seconds, self.bottom)
        return Text("\n").join(lines)
