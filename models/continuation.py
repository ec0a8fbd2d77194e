"""Continue a token sequence offline with the jam's engine: the streaming decoder, the preset's
sampling controls and the grammar guard, run as fast as the machine goes. `livegen continue`
and `livegen-train eval-continuations` both generate here (below the app, so training may
import it), and `answer_tokens` plays one call-mode turn under the jam's turn rules.

The prompt is the player's (PLAYER owns its notes, so the model may not end or re-strike what
the prompt leaves sounding); the model then writes until `seconds` of model time have passed
(the sum of its TIME_SHIFTs), and every model note still open is closed at that time, so the
result has no stuck notes. Same prompt, preset and seed give the same tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from livegen.kernels.time_steps import seconds_to_step, step_to_seconds
from livegen.kernels.vocab import (
    BEGIN,
    MAX_SHIFT_STEPS,
    NOTE_OFF,
    NOTE_ON,
    TIME_SHIFT,
)
from livegen.models.follow import Follower, FollowSettings
from livegen.models.grammar import MODEL, PLAYER, GrammarState
from livegen.models.sampling import SamplingParams
from livegen.models.streaming import StreamingDecoder
from livegen.models.turns import MAX_TOKENS_PER_STEP, turn_mask

# A safety net, not a musical limit: a model that writes many tokens without advancing time
# (velocity changes, say) still stops. Dense piano is ~50-100 tokens/s (BENCHMARKS.md).
TOKENS_PER_SECOND_CAP = 400


@dataclass
class Continuation:
    prompt: list[int]  # the prompt's tokens (BEGIN not included)
    generated: list[int]  # the model's tokens, closing NOTE_OFFs included
    prompt_seconds: float  # model time at the end of the prompt
    seconds: float  # model time the continuation covers
    elapsed: float  # wall-clock seconds spent generating (prefill included)
    prefill_seconds: float
    capped: bool  # stopped by the token cap before `seconds` of model time


def continue_tokens(
    decoder: StreamingDecoder,
    prompt: list[int],
    params: SamplingParams,
    seconds: float,
    *,
    seed: int = 0,
    max_tokens: int | None = None,
    follow: FollowSettings | None = None,
) -> Continuation:
    """Prefill BEGIN + prompt, then sample until `seconds` of model time have passed
    (`follow`: controls taken from the prompt, models/follow.py)."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    decoder.reset()
    state = GrammarState()
    state.extend(prompt, PLAYER)
    start_step = state.step
    end_step = start_step + seconds_to_step(seconds)
    limit = max_tokens if max_tokens is not None else int(seconds * TOKENS_PER_SECOND_CAP) + 256
    generator = torch.Generator().manual_seed(seed)

    t0 = time.perf_counter()
    decoder.append([BEGIN, *prompt])
    if decoder.device.type == "cuda":  # queued GPU work: the time is the work's once it ran
        torch.cuda.synchronize(decoder.device)
    prefill = time.perf_counter() - t0
    follower = _follower(prompt, start_step, params, follow, seed)
    generated: list[int] = []
    while state.step < end_step and len(generated) < limit:
        if follower is None:
            generated.append(decoder.sample(params, state, generator))
        else:
            now, rules = follower.params(state.step), follower.restrict(None, state.step, state)
            generated.append(decoder.sample(now, state, generator, rules, follower.bias))
        if follower is not None:
            follower.observe(generated[-1], state.step)
    capped = state.step < end_step
    # Close what the model left sounding, at the time it stopped (decoder not needed).
    generated.extend(state.closing_tokens(MODEL))
    return Continuation(
        prompt=list(prompt),
        generated=generated,
        prompt_seconds=step_to_seconds(start_step),
        seconds=step_to_seconds(state.step - start_step),
        elapsed=time.perf_counter() - t0,
        prefill_seconds=prefill,
        capped=capped,
    )


def _follower(
    prompt: list[int], step: int, params: SamplingParams, follow: FollowSettings | None, seed: int
) -> Follower | None:
    return Follower(prompt, step, params, follow, seed) if follow and follow.active else None


def time_shift_tokens(steps: int) -> list[int]:
    """TIME_SHIFT tokens that advance `steps` 10 ms steps (none for steps <= 0)."""
    full, rest = divmod(max(0, steps), MAX_SHIFT_STEPS)
    return [TIME_SHIFT + MAX_SHIFT_STEPS - 1] * full + ([TIME_SHIFT + rest - 1] if rest else [])


@dataclass
class Answer:
    tokens: list[int]  # the model's tokens from the phrase's end: the silence, then the turn
    start_step: int  # context step where the turn begins (after the silence)
    end_step: int  # context step where the turn ended (early once a note budget is spent)


def answer_tokens(
    decoder: StreamingDecoder,
    phrase: list[int],
    params: SamplingParams,
    *,
    gap_steps: int,
    length_steps: int,
    max_notes: int | None,
    seed: int = 0,
    follow: FollowSettings | None = None,
) -> Answer:
    """One call-mode turn as the decode worker plays it: after the player's phrase, silence
    for gap_steps, then a turn of length_steps that opens with a note, keeps rests inside its
    end, writes at most MAX_TOKENS_PER_STEP tokens per instant, and ends early once max_notes
    notes have been played and have ended. The worker's lookahead and clock do not change
    what is written, only when, so they are left out. `follow`: as in continue_tokens, from
    the phrase."""
    decoder.reset()
    state = GrammarState()
    state.extend(phrase, PLAYER)
    generator = torch.Generator().manual_seed(seed)
    decoder.append([BEGIN, *phrase])
    follower = _follower(phrase, state.step, params, follow, seed)
    tokens = time_shift_tokens(gap_steps)
    state.extend(tokens, MODEL)
    decoder.append(tokens)
    start = state.step
    end = start + max(1, length_steps)
    if follower is not None:
        follower.start_step = start
    notes_left, started, at_step = max_notes, False, (state.step, 0)
    while state.step < end:
        crowded = at_step[1] >= MAX_TOKENS_PER_STEP and at_step[0] == state.step
        rules = turn_mask(
            opening=not started, room_steps=end - state.step, crowded=crowded, notes_left=notes_left
        )
        now = params
        if follower is not None:
            now, rules = follower.params(state.step), follower.restrict(rules, state.step, state)
        token = decoder.sample(
            now, state, generator, rules, None if follower is None else follower.bias
        )
        tokens.append(token)
        if follower is not None:
            follower.observe(token, state.step)
        at_step = (state.step, at_step[1] + 1 if at_step[0] == state.step else 1)
        if NOTE_ON <= token < NOTE_OFF:
            started = True
            notes_left = None if notes_left is None else notes_left - 1
        if notes_left is not None and notes_left <= 0 and not state.owned(MODEL):
            break
    tokens.extend(state.closing_tokens(MODEL))
    return Answer(tokens, start, state.step)
