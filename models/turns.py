"""The rules of a model's turn, shared by the live jam (the decode worker, the turn planner) and
the offline measure of call mode (livegen-train eval-continuations --call), so the measure
judges the jam's own logic rather than a copy of it.

- How long an answer is: as long as the phrase it answers, never longer than the response
  time, at least half a second; and, where the turn carries a note budget, no more notes
  than the phrase had (a four-note call gets a short answer, not fourteen notes).
- What a turn allows next: it opens with a note (not a rest), no rest runs past its end, no
  more than MAX_TOKENS_PER_STEP tokens share one instant, and no note-on once the budget is
  spent.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, TIME_SHIFT, VELOCITY, VOCAB_SIZE

if TYPE_CHECKING:  # the engine imports this module (via the turn planner): no torch there
    import torch

MIN_ANSWER_SECONDS = 0.5
# A safety net, not a musical limit: dense piano writes a few tokens per 10 ms step; a model
# gone wrong (or random weights) could write hundreds at one instant and flood the output.
MAX_TOKENS_PER_STEP = 12
# Inside this many steps of the turn's end, a rest may not run past it.
END_GUARD_STEPS = 100
# The answer's note budget, as a multiple of the phrase's note count.
ANSWER_NOTES_RATIO = 1.0


def answer_seconds(phrase_seconds: float, response_seconds: float) -> float:
    """An answer lasts as long as its phrase (first note-on to last release), within
    [MIN_ANSWER_SECONDS, response_seconds]."""
    return min(response_seconds, max(MIN_ANSWER_SECONDS, phrase_seconds))


def answer_notes(phrase_notes: int) -> int:
    """How many notes an answer to a phrase of `phrase_notes` notes may play (at least one)."""
    return max(1, math.ceil(phrase_notes * ANSWER_NOTES_RATIO - 1e-9))


def turn_mask(
    *, opening: bool, room_steps: int, crowded: bool, notes_left: int | None
) -> torch.Tensor | None:
    """What the turn allows next (bool [V]; None: anything, the usual case mid-turn, so no
    mask is built). opening: no note yet in a turn that starts with one; room_steps: steps to
    the turn's end; crowded: enough tokens at this instant; notes_left: the note budget left
    (None: no budget)."""
    spent = notes_left is not None and notes_left <= 0
    if not (opening or room_steps < END_GUARD_STEPS or crowded or spent):
        return None
    import torch

    allowed = torch.ones(VOCAB_SIZE, dtype=torch.bool)
    if opening:
        allowed[TIME_SHIFT:VELOCITY] = False
    if room_steps < END_GUARD_STEPS:
        allowed[TIME_SHIFT + max(1, room_steps) : VELOCITY] = False
    if crowded:  # enough at this instant: time must move on
        allowed[:TIME_SHIFT] = False
        allowed[VELOCITY:] = False
    if spent:
        allowed[NOTE_ON:NOTE_OFF] = False
    return allowed
