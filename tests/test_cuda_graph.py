"""The CUDA-graph step's code (models/cuda_graph.py), run uncaptured on the CPU: the on-device
sampling equals the CPU controls, and a decoder that samples through it stays exact.

The captured replay itself needs a GPU; its test says so in its name and skip reason."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from livegen.kernels.tokenizer import decode_tokens
from livegen.kernels.vocab import BEGIN, NOTE_OFF, NOTE_ON, NUM_EVENTS, TIME_SHIFT, VOCAB_SIZE
from livegen.models.config import PerceiverARConfig
from livegen.models.cuda_graph import (
    GraphStep,
    gumbel_max,
    knob_values,
    sample_on_device,
    truncate_on_device,
)
from livegen.models.grammar import MODEL, PLAYER, GrammarState
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.sampling import SamplingParams, allowed_mask, transform
from livegen.models.streaming import StreamingDecoder

TOL = 1e-4


def tiny_model(seed: int = 0) -> PerceiverAR:
    torch.manual_seed(seed)
    config = PerceiverARConfig(context=48, latents=12, dim=32, heads=2, layers=2)
    return PerceiverAR(config).eval()


def note_on_vector() -> torch.Tensor:
    v = torch.zeros(VOCAB_SIZE)
    v[NOTE_ON:NOTE_OFF] = 1
    return v


def random_state(rng: random.Random) -> GrammarState:
    state = GrammarState()
    for _ in range(rng.randrange(0, 12)):
        state.update(NOTE_ON + rng.randrange(40, 90), rng.choice((PLAYER, MODEL)))
    return state


@pytest.mark.parametrize("case", range(12))
def test_device_truncation_equals_the_cpu_transform(case):
    rng = random.Random(case)
    params = SamplingParams(
        temperature=rng.choice((0.5, 1.0, 1.7)),
        top_k=rng.choice((0, 1, 5, 40)),
        top_p=rng.choice((1.0, 0.95, 0.6)),
        min_p=rng.choice((0.0, 0.02, 0.2)),
        density=rng.choice((0.0, 1.5, -2.0)),
        low_pitch=rng.randrange(20, 60),
        high_pitch=rng.randrange(60, 109),
    )
    state = random_state(rng)
    logits = torch.randn(VOCAB_SIZE, generator=torch.Generator().manual_seed(case)) * 3
    allowed = allowed_mask(state, params)
    knobs = torch.tensor(knob_values(params))
    got = truncate_on_device(logits, allowed, knobs, note_on_vector())
    expected = transform(logits, allowed, params)
    assert torch.equal(torch.isfinite(got), torch.isfinite(expected))
    finite = torch.isfinite(expected)
    torch.testing.assert_close(got[finite], expected[finite])


def test_gumbel_max_draws_from_the_softmax():
    x = torch.full((VOCAB_SIZE,), float("-inf"))
    x[[3, 7, 9]] = torch.tensor([1.0, 0.0, -1.0])
    generator = torch.Generator().manual_seed(0)
    draws = [int(gumbel_max(x, torch.rand(VOCAB_SIZE, generator=generator))) for _ in range(4000)]
    counts = np.bincount(draws, minlength=10)[[3, 7, 9]] / 4000
    expected = torch.softmax(torch.tensor([1.0, 0.0, -1.0]), 0).numpy()
    assert np.abs(counts - expected).max() < 0.03
    assert sum(counts) == 1.0


def test_with_nothing_allowed_the_device_draw_lets_time_move_on_as_the_cpu_draw_does():
    """A mask that allows nothing (or a truncation that leaves nothing) gives TIME_SHIFT, as
    sample_token does, where the argmax over all -inf would give token 0."""
    logits = torch.randn(VOCAB_SIZE, generator=torch.Generator().manual_seed(0))
    knobs = torch.tensor(knob_values(SamplingParams()))
    noise = torch.rand(VOCAB_SIZE, generator=torch.Generator().manual_seed(1))
    nothing = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
    token = sample_on_device(logits, nothing, knobs, noise, note_on_vector())
    assert token.tolist() == [TIME_SHIFT]
    one = nothing.clone()
    one[NOTE_ON + 60] = True
    assert sample_on_device(logits, one, knobs, noise, note_on_vector()).tolist() == [NOTE_ON + 60]


def fused_run(seed: int, n: int = 250) -> tuple[list[int], StreamingDecoder]:
    decoder = StreamingDecoder(tiny_model(), device_sampling=True)
    params = SamplingParams(temperature=1.5, max_note_seconds=0.3, max_polyphony=4)
    state, generator = GrammarState(), torch.Generator().manual_seed(seed)
    decoder.append([BEGIN])
    return [decoder.sample(params, state, generator) for _ in range(n)], decoder


def test_sampling_through_the_graph_step_is_exact_and_obeys_the_controls():
    tokens, decoder = fused_run(seed=1)
    # The fused draw + decode left the decoder exactly where appending those tokens leaves it.
    plain = StreamingDecoder(tiny_model())
    plain.append([BEGIN])
    for token in tokens:
        expected = plain.append([token])
    torch.testing.assert_close(decoder.logits(), expected, atol=TOL, rtol=0)
    assert all(t < NUM_EVENTS for t in tokens)
    notes = decode_tokens(tokens)
    assert len(notes) > 10
    assert (notes.end - notes.start).max() <= 0.3 + 1e-9  # the guard, through the graph path


def test_sampling_through_the_graph_step_is_seeded():
    assert fused_run(seed=5, n=80)[0] == fused_run(seed=5, n=80)[0]
    assert fused_run(seed=5, n=80)[0] != fused_run(seed=6, n=80)[0]


def test_graph_step_decode_equals_the_plain_step():
    model = tiny_model()
    graph = StreamingDecoder(model, device_sampling=True)
    plain = StreamingDecoder(model, cpu_kernels=False)  # the same torch ops, bit for bit
    rng = random.Random(3)
    for _ in range(130):
        token = rng.randrange(NUM_EVENTS)
        torch.testing.assert_close(graph.append([token]), plain.append([token]), atol=0, rtol=0)
    graph.rollback(100)
    plain.rollback(100)
    torch.testing.assert_close(graph.append([5]), plain.append([5]), atol=TOL, rtol=0)


def test_capture_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: capture is allowed here")
    decoder = StreamingDecoder(tiny_model())
    with pytest.raises(ValueError, match="CUDA"):
        GraphStep(decoder, capture=True)
    with pytest.raises(ValueError, match="CUDA"):
        StreamingDecoder(tiny_model(), cuda_graph=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: capture needs one")
def test_captured_graph_equals_eager_needs_cuda():
    model = tiny_model().cuda()
    graph = StreamingDecoder(model, cuda_graph=True, dtype=torch.float32)
    eager = StreamingDecoder(model, dtype=torch.float32)
    rng = random.Random(4)
    for _ in range(150):
        token = rng.randrange(NUM_EVENTS)
        torch.testing.assert_close(graph.append([token]), eager.append([token]), atol=TOL, rtol=0)
    params, state = SamplingParams(), GrammarState()
    generator = torch.Generator().manual_seed(0)
    tokens = [graph.sample(params, state, generator) for _ in range(50)]
    for token in tokens:
        expected = eager.append([token])
    torch.testing.assert_close(graph.logits(), expected, atol=TOL, rtol=0)
