"""From next-token logits to a token: the live controls as masks and transforms.

Order of operations (each step only ever removes or reweights tokens):
1. grammar: only tokens that make sense now (ownership, register, polyphony, the maximum note
   length; a VELOCITY only where a NOTE_ON may follow); if a model note has reached its
   maximum length, its NOTE_OFF is the only choice.
2. density: a bias (in nats) on every NOTE_ON, so the player can ask for more or fewer notes.
3. temperature, then top-k, top-p (nucleus) and min-p truncation, in that order, each on the
   distribution the previous step left.
4. one draw from the result with the caller's generator (seeded: deterministic).

SamplingParams is a plain mutable dataclass: the engine changes its fields live and the next
token uses them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from livegen.kernels.errors import BadValueError
from livegen.kernels.time_steps import seconds_to_step
from livegen.kernels.values import check_fields
from livegen.kernels.vocab import (
    MAX_SHIFT_STEPS,
    NOTE_OFF,
    NOTE_ON,
    NUM_EVENTS,
    TIME_SHIFT,
    VELOCITY,
    VOCAB_SIZE,
)
from livegen.models.grammar import MODEL, PLAYER, GrammarState
from livegen.models.preset import SAMPLING_BOUNDS


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 0.95  # 1.0: off
    min_p: float = 0.0  # 0.0: off
    low_pitch: int = 21  # register: the model starts notes only in low..high
    high_pitch: int = 108
    max_polyphony: int = 10  # model notes sounding at once
    max_note_seconds: float = 4.0  # the grammar guard closes a model note after this
    density: float = 0.0  # nats added to every NOTE_ON logit (> 0: busier, < 0: sparser)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (a BadValueError) naming the first field out of range."""
        check_fields(self, SAMPLING_BOUNDS)
        if self.low_pitch > self.high_pitch:
            raise BadValueError(
                f"register must satisfy low <= high, got {self.low_pitch}..{self.high_pitch}"
            )

    @property
    def max_note_steps(self) -> int:
        return max(1, seconds_to_step(self.max_note_seconds))

    def replace(self, **changes: object) -> SamplingParams:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_defaults(cls, defaults: object, **overrides: object) -> SamplingParams:
        """Build from a preset's [sampling] table (any object with matching attributes)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {n: getattr(defaults, n) for n in names if hasattr(defaults, n)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def forced_token(state: GrammarState, params: SamplingParams) -> int | None:
    """The token the grammar guard requires now (closing an overdue model note), else None."""
    pitch = state.overdue(params.max_note_steps)
    return None if pitch is None else NOTE_OFF + pitch


def allowed_mask(
    state: GrammarState, params: SamplingParams, restrict: torch.Tensor | None = None
) -> torch.Tensor:
    """Bool [VOCAB_SIZE] (on the CPU): the tokens the model may write next. `restrict`: the
    caller's own rules (a jam turn's), ANDed in."""
    allowed = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
    allowed[VELOCITY:NUM_EVENTS] = True
    # Time may advance only as far as the longest-open model note may still last.
    shifts = min(MAX_SHIFT_STEPS, state.steps_left(params.max_note_steps))
    allowed[TIME_SHIFT : TIME_SHIFT + max(0, shifts)] = True
    # Note-ons: inside the register, never on a pitch the player holds, within polyphony.
    if state.model_polyphony() < params.max_polyphony:
        allowed[NOTE_ON + params.low_pitch : NOTE_ON + params.high_pitch + 1] = True
        for pitch in state.holding(PLAYER):
            allowed[NOTE_ON + pitch] = False
    # Note-offs: only of notes the model itself started.
    for pitch in state.owned(MODEL):
        allowed[NOTE_OFF + pitch] = True
    if restrict is not None:
        allowed &= restrict.cpu()
    # A VELOCITY token only sets the loudness of the next note-on: where no note-on may come,
    # a velocity could only be followed by another (a model denied its note-on by the
    # polyphony cap wrote velocity after velocity until the token cap, issue 18).
    if not allowed[NOTE_ON:NOTE_OFF].any():
        allowed[VELOCITY:NUM_EVENTS] = False
    # Nor does one follow another (the tokenizer never writes two in a row): a model whose
    # favourite note-ons were masked (a chord the rhythm plan holds open) wrote velocity after
    # velocity until the token cap, 1.5 s into a 15 s continuation (issue 18).
    if state.after_velocity:
        allowed[VELOCITY:NUM_EVENTS] = False
    return allowed


def transform(logits: torch.Tensor, allowed: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Masked, biased, tempered and truncated logits (float32 [V]; -inf where excluded)."""
    x = logits.detach().float().cpu().clone()
    x[~allowed] = float("-inf")
    if params.density:
        x[NOTE_ON:NOTE_OFF] += params.density
    x /= params.temperature
    # Each truncation sees the distribution the previous one left (renormalised).
    if params.top_k and params.top_k < x.numel():
        kth = torch.topk(x, params.top_k).values[-1]
        x[x < kth] = float("-inf")  # ties with the k-th are kept
    if params.top_p < 1:
        probs = torch.softmax(x, dim=-1)
        order = torch.argsort(probs, descending=True)
        before = torch.cumsum(probs[order], 0) - probs[order]  # mass strictly above each token
        x[order[before >= params.top_p]] = float("-inf")
    if params.min_p > 0:
        probs = torch.softmax(x, dim=-1)
        x[probs < params.min_p * probs.max()] = float("-inf")
    return x


def sample_token(
    logits: torch.Tensor,
    params: SamplingParams,
    state: GrammarState,
    generator: torch.Generator | None = None,
    restrict: torch.Tensor | None = None,
) -> int:
    """One token for the model to write next, under every control (`restrict`: see
    allowed_mask)."""
    forced = forced_token(state, params)
    if forced is not None:
        return forced
    x = transform(logits, allowed_mask(state, params, restrict), params)
    if not torch.isfinite(x).any():  # nothing allowed survived: let time move on
        return TIME_SHIFT
    probs = torch.softmax(x, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
