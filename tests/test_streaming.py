"""The streaming decoder must give exactly what the full forward pass gives over the same window."""

from __future__ import annotations

import random

import pytest
import torch

from livegen.benchmark import measure_decode
from livegen.models.config import PerceiverARConfig
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.streaming import StreamingDecoder

TOL = 1e-4
# The CPU's numba step (models/cpu_decode.py) and the torch step a GPU runs: both must be exact.
PATHS = pytest.mark.parametrize("cpu_kernels", [True, False], ids=["numba", "torch"])


def tiny_model(context: int = 64, latents: int = 16, seed: int = 0) -> PerceiverAR:
    torch.manual_seed(seed)
    config = PerceiverARConfig(context=context, latents=latents, dim=32, heads=2, layers=2)
    return PerceiverAR(config).eval()


def random_tokens(n: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(388) for _ in range(n)]


@torch.no_grad()
def reference_logits(model: PerceiverAR, tokens: list[int], p: int, window: int) -> torch.Tensor:
    """Full forward over the training crop whose latents start at `window`, read at p."""
    c = model.config
    start = max(0, window - (c.context - c.latents))
    # Causal: tokens after p do not matter, but the crop must be the full window long.
    padded = tokens[: p + 1] + [0] * c.latents
    crop = torch.tensor(padded[start : window + c.latents])[None]
    logits = model(crop, positions_offset=start)
    return logits[0, p - window]


def owner_window(decoder: StreamingDecoder, p: int) -> int:
    return decoder.window_start(decoder.active_windows(p)[0])


@PATHS
@pytest.mark.parametrize("refill", [None, 1, 5, 16])
def test_streamed_logits_equal_full_forward_across_refills(refill, cpu_kernels):
    model = tiny_model()
    decoder = StreamingDecoder(model, refill=refill, cpu_kernels=cpu_kernels)
    tokens = random_tokens(3 * 64 + 20)  # longer than 3 N: the ring wraps several times
    for p, token in enumerate(tokens):
        logits = decoder.append([token])
        if p < 20 or p % 7 == 0 or p > 180:  # the session start, then a sample of the rest
            expected = reference_logits(model, tokens, p, owner_window(decoder, p))
            torch.testing.assert_close(logits, expected, atol=TOL, rtol=0)
    assert decoder.position == len(tokens)
    assert owner_window(decoder, len(tokens) - 1) > 64  # several refills happened


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("refill", [None, 5])
def test_short_appends_equal_full_forward_across_window_starts(size, refill):
    """A player's note (2-4 tokens) is one CpuStep call, whose rows span window starts."""
    model = tiny_model()
    decoder = StreamingDecoder(model, refill=refill)
    assert decoder.backend_name == "cpu-kernels"
    tokens = random_tokens(150 + size, seed=size)
    decoder.append(tokens[:1])
    for end in range(1 + size, len(tokens), size):
        logits = decoder.append(tokens[end - size : end])
        p = end - 1
        expected = reference_logits(model, tokens, p, owner_window(decoder, p))
        torch.testing.assert_close(logits, expected, atol=TOL, rtol=0)


def test_window_stride_follows_refill():
    decoder = StreamingDecoder(tiny_model(), refill=8)  # stride 16 - 8 + 1 = 9
    assert [owner_window(decoder, p) for p in (0, 15, 16, 24, 25)] == [0, 0, 9, 9, 18]
    # the new window after a refill holds exactly R latents, the new token included
    assert 16 - owner_window(decoder, 16) + 1 == 8


@pytest.mark.parametrize("chunks", [[1] * 10, [3, 50, 7, 1], [140], [64, 64, 12], [5, 130, 5]])
def test_chunked_prefill_equals_token_by_token(chunks):
    model = tiny_model()
    tokens = random_tokens(sum(chunks) + 30, seed=2)
    one = StreamingDecoder(model)
    for token in tokens:
        expected = one.append([token])
    chunked = StreamingDecoder(model)
    at = 0
    for size in chunks:
        chunked.append(tokens[at : at + size])
        at += size
    for token in tokens[at:]:  # keep streaming after the prefill: caches must be right too
        got = chunked.append([token])
    torch.testing.assert_close(got, expected, atol=TOL, rtol=0)


@PATHS
@pytest.mark.parametrize("keep, dropped", [(100, 5), (100, 30), (150, 60), (31, 20), (3, 2)])
def test_rollback_equals_never_appending(keep, dropped, cpu_kernels):
    model = tiny_model()
    tokens = random_tokens(keep + 40, seed=3)
    other = random_tokens(dropped, seed=4)
    decoder = StreamingDecoder(model, cpu_kernels=cpu_kernels)
    decoder.append(tokens[:keep])
    for token in other:  # the model's future, later overridden by the player
        decoder.append([token])
    decoder.rollback(keep)
    assert decoder.position == keep
    clean = StreamingDecoder(model)
    clean.append(tokens[:keep])
    torch.testing.assert_close(decoder.logits(), clean.logits(), atol=TOL, rtol=0)
    for token in tokens[keep:]:
        got, expected = decoder.append([token]), clean.append([token])
        torch.testing.assert_close(got, expected, atol=TOL, rtol=0)


def test_rollback_across_refill_recomputes_the_older_window():
    model = tiny_model()
    tokens = random_tokens(120, seed=5)
    decoder = StreamingDecoder(model)
    for token in tokens:
        decoder.append([token])
    target = 97
    assert owner_window(decoder, target - 1) < owner_window(decoder, len(tokens) - 1)
    decoder.rollback(target)
    expected = reference_logits(model, tokens, target - 1, owner_window(decoder, target - 1))
    torch.testing.assert_close(decoder.logits(), expected, atol=TOL, rtol=0)


def test_rollback_limits():
    decoder = StreamingDecoder(tiny_model(), history=80)
    decoder.append(random_tokens(100))
    with pytest.raises(ValueError, match="at most 16"):
        decoder.rollback(50)
    with pytest.raises(ValueError):
        decoder.rollback(101)
    decoder.rollback(0)
    assert decoder.position == 0


@PATHS
def test_rollback_reach_counts_from_the_furthest_position_reached(cpu_kernels):
    """A rolled-back future overwrote history slots: two rollbacks, each short, must not
    reach further back than one long one could (the history no longer holds those tokens)."""
    decoder = StreamingDecoder(tiny_model(context=32, latents=8), cpu_kernels=cpu_kernels)
    decoder.append(random_tokens(80))  # history 64: positions 16..79 held
    decoder.rollback(61)
    with pytest.raises(ValueError, match="furthest position reached \\(80\\)"):
        decoder.rollback(30)
    decoder.rollback(50)  # within reach of 80: fine, and exact
    tokens = random_tokens(80)[:50] + random_tokens(10, seed=7)
    decoder.append(tokens[50:])
    p = len(tokens) - 1
    expected = reference_logits(decoder.model, tokens, p, owner_window(decoder, p))
    torch.testing.assert_close(decoder.logits(), expected, atol=TOL, rtol=0)


@PATHS
@pytest.mark.parametrize("size", [2, 3, 4])
def test_rollback_into_a_short_append_equals_full_forward(size, cpu_kernels):
    """Every latent a short append computed must be exact, not only its last logits: a
    rollback into the chunk keeps the latents before the cut. Chunks cross window starts and
    ends with the ring wrapped (the failure mode: a later token of the chunk overwriting a
    ring slot an earlier one still sees). The weights are sharpened so that one missing key
    moves the logits well past TOL (with plain random weights it moved them by ~1e-5)."""
    model = tiny_model()
    with torch.no_grad():
        for weight in (model.cross.q.weight, model.cross.kv.weight):
            weight.mul_(15)
        model.cross.proj.weight.mul_(50)
        for block in model.blocks:
            block.attn.qkv.weight.mul_(5)
            block.attn.proj.weight.mul_(50)
    tokens = random_tokens(200, seed=20 + size)
    decoder = StreamingDecoder(model, refill=8, cpu_kernels=cpu_kernels)
    decoder.append(tokens[:70])
    position, checks = 70, 0
    while position + size < 190:
        decoder.append(tokens[position : position + size])
        cut = position + 1 + (position % (size - 1) if size > 2 else 0)
        decoder.rollback(cut)
        decoder.append(tokens[cut : cut + 1])
        p = cut
        expected = reference_logits(model, tokens, p, owner_window(decoder, p))
        torch.testing.assert_close(decoder.logits(), expected, atol=TOL, rtol=0)
        position, checks = cut + 1, checks + 1
    assert checks > 30


def test_teacher_forced_nll_equals_batch_nll():
    model = tiny_model(context=64, latents=64)  # L == N: one window sees a whole crop
    tokens = random_tokens(64, seed=6)
    with torch.no_grad():
        batch_logits = model(torch.tensor(tokens)[None])[0]
    batch_nll = torch.nn.functional.cross_entropy(batch_logits[:-1], torch.tensor(tokens[1:]))
    decoder = StreamingDecoder(model, refill=64)
    streamed = [decoder.append([token]) for token in tokens[:-1]]
    stream_nll = torch.nn.functional.cross_entropy(torch.stack(streamed), torch.tensor(tokens[1:]))
    assert abs(float(stream_nll) - float(batch_nll)) < 1e-5


def test_teacher_forced_nll_perceiver_crop():
    """The latents of one training crop (N tokens, last L scored) through the streaming path."""
    model = tiny_model()
    tokens = random_tokens(64, seed=7)
    with torch.no_grad():
        batch_logits = model(torch.tensor(tokens)[None])[0]  # latents 48..63
    decoder = StreamingDecoder(model, refill=1)  # stride 16: a window starts at 48
    decoder.append(tokens[:48])
    streamed = [decoder.append([token]) for token in tokens[48:]]
    torch.testing.assert_close(torch.stack(streamed), batch_logits, atol=TOL, rtol=0)


def test_baseline_l_equals_n_streams():
    model = tiny_model(context=32, latents=32)
    decoder = StreamingDecoder(model)
    tokens = random_tokens(110, seed=8)
    for p, token in enumerate(tokens):
        logits = decoder.append([token])
        if p % 5 == 0:
            expected = reference_logits(model, tokens, p, owner_window(decoder, p))
            torch.testing.assert_close(logits, expected, atol=TOL, rtol=0)


def test_positions_far_into_a_session_do_not_drift():
    """Same tokens at position 1e7 give the same logits as at 0 (rotary is relative)."""
    model = tiny_model(context=32, latents=32)
    tokens = torch.tensor(random_tokens(20, seed=9))[None]
    with torch.no_grad():
        near = model(tokens)
        far = model(tokens, positions_offset=10_000_000)
    torch.testing.assert_close(far, near, atol=TOL, rtol=0)


def test_append_rejects_bad_ids_and_logits_needs_a_token():
    decoder = StreamingDecoder(tiny_model())
    with pytest.raises(RuntimeError):
        decoder.logits()
    with pytest.raises(ValueError):
        decoder.append([391])


def test_measure_decode_reports_figures():
    figures = measure_decode(tiny_model(), random_tokens(40), 20, warmup=2)
    for key in ("prefill_ms", "ms_per_token_p50", "ms_per_token_p99", "refill_ms"):
        assert figures[key] > 0
    assert figures["ms_per_token_p50"] <= figures["ms_per_token_max"]


@PATHS
@pytest.mark.parametrize("refill", [None, 3])
def test_random_appends_and_rollbacks_across_many_refills(refill, cpu_kernels):
    """A jam's pattern: the model runs ahead, the player cuts in (rollback), chunks of player
    tokens arrive, again and again, across many window refills and ring wraps. After every
    operation the logits equal the full forward pass over the current tokens."""
    model = tiny_model()
    rng = random.Random(11 + (refill or 0))
    decoder = StreamingDecoder(model, refill=refill, cpu_kernels=cpu_kernels)
    tokens: list[int] = []
    checks = longest = 0
    for _ in range(120):
        if tokens and rng.random() < 0.25:
            back = rng.randrange(1, min(len(tokens), 20) + 1)  # history reaches 2N - N = 64
            decoder.rollback(len(tokens) - back)
            del tokens[len(tokens) - back :]
            if not tokens:
                continue
        else:
            chunk = random_tokens(rng.choice((1, 1, 1, 2, 5, 17, 30)), seed=rng.randrange(10**6))
            decoder.append(chunk)
            tokens += chunk
            longest = max(longest, len(tokens))
        p = len(tokens) - 1
        expected = reference_logits(model, tokens, p, owner_window(decoder, p))
        torch.testing.assert_close(decoder.logits(), expected, atol=TOL, rtol=0)
        checks += 1
    assert checks > 80
    assert longest > 3 * 64  # many window refills and several wraps of the ring


def test_int8_quantised_model_streams_rolls_back_and_stays_close():
    """[model].quantize = "int8": the same decoder code runs, appends and rolls back. Dynamic
    int8 scales activations per call, so a latent computed in a batch (prefill, rollback)
    differs slightly from one computed alone: int8 is close, not exact (the float paths are
    exact); benchmarks/bench_decode.py measures what it costs in NLL."""
    from livegen.models.loading import quantize_int8

    model = tiny_model()
    quantized = quantize_int8(model)
    tokens = random_tokens(150, seed=12)
    floats, ints = StreamingDecoder(model), StreamingDecoder(quantized)
    for token in tokens[:100]:
        expected = floats.append([token])
        got = ints.append([token])
    assert float((got - expected).abs().max()) < 0.05
    # Rollback: identical to a quantised decoder that never saw the dropped tokens.
    clean = StreamingDecoder(quantized)
    for token in tokens[:80]:
        clean.append([token])
    ints.rollback(80)
    assert ints.position == 80
    torch.testing.assert_close(ints.logits(), clean.logits(), atol=0.02, rtol=0)
    for token in tokens[80:]:
        torch.testing.assert_close(ints.append([token]), clean.append([token]), atol=0.02, rtol=0)
