"""Continue a token sequence offline with the jam's engine: the streaming decoder, the preset's
sampling controls and the grammar guard, run as fast as the machine goes.

The prompt is the player's (PLAYER owns its notes, so the model may not end or re-strike what
the prompt leaves sounding); the model then writes until `seconds` of model time have passed
(the sum of its TIME_SHIFTs), and every model note still open is closed at that time, so the
result has no stuck notes. Same prompt, preset and seed give the same tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from livegen.kernels.vocab import BEGIN, STEPS_PER_SECOND
from livegen.models.grammar import MODEL, PLAYER, GrammarState
from livegen.models.sampling import SamplingParams
from livegen.models.streaming import StreamingDecoder

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
) -> Continuation:
    """Prefill BEGIN + prompt, then sample until `seconds` of model time have passed."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    decoder.reset()
    state = GrammarState()
    state.extend(prompt, PLAYER)
    start_step = state.step
    end_step = start_step + round(seconds * STEPS_PER_SECOND)
    limit = max_tokens if max_tokens is not None else int(seconds * TOKENS_PER_SECOND_CAP) + 256
    generator = torch.Generator().manual_seed(seed)

    t0 = time.perf_counter()
    decoder.append([BEGIN, *prompt])
    prefill = time.perf_counter() - t0
    generated: list[int] = []
    while state.step < end_step and len(generated) < limit:
        generated.append(decoder.sample(params, state, generator))
    capped = state.step < end_step
    # Close what the model left sounding, at the time it stopped (decoder not needed).
    generated.extend(state.closing_tokens(MODEL))
    return Continuation(
        prompt=list(prompt),
        generated=generated,
        prompt_seconds=start_step / STEPS_PER_SECOND,
        seconds=(state.step - start_step) / STEPS_PER_SECOND,
        elapsed=time.perf_counter() - t0,
        prefill_seconds=prefill,
        capped=capped,
    )
