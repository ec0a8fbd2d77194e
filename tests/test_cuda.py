"""The CUDA paths on a real GPU: the streaming decoder (eager and as a captured CUDA graph) equals
the full forward pass there too, rollback and chunked prefill stay exact, sampling on the device
equals the CPU controls, bf16 decoding stays close to fp32, and bf16 training runs end to end.

Every test here needs a CUDA GPU: on a machine without one (CI) they skip, and their names and
the skip reason say so. `./dev gpu` (scripts/gpu_check.sh) runs them on a GPU machine.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import torch

from livegen.kernels.tokenizer import decode_tokens
from livegen.kernels.vocab import BEGIN, NUM_EVENTS, VOCAB_SIZE
from livegen.models.cuda_graph import knob_values, truncate_on_device
from livegen.models.grammar import GrammarState
from livegen.models.perceiver_ar import PerceiverAR
from livegen.models.sampling import SamplingParams, allowed_mask, transform
from livegen.models.streaming import StreamingDecoder
from tests.test_cuda_graph import note_on_vector, random_state
from tests.test_streaming import owner_window, random_tokens, tiny_model

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU: these run on one (./dev gpu)"
)

TOL = 1e-4
CUDA = torch.device("cuda")
MODES = pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])


def cuda_model(dtype: torch.dtype = torch.float32) -> PerceiverAR:
    return tiny_model().to(CUDA, dtype)


@torch.no_grad()
def reference(model: PerceiverAR, tokens: list[int], p: int, window: int) -> torch.Tensor:
    """The full forward over the training crop whose latents start at `window`, read at p, on
    the model's own device (tests/test_streaming.py's reference, device-aware)."""
    c = model.config
    device = next(model.parameters()).device
    start = max(0, window - (c.context - c.latents))
    padded = tokens[: p + 1] + [0] * c.latents
    crop = torch.tensor(padded[start : window + c.latents], device=device)[None]
    return model(crop, positions_offset=start)[0, p - window].float()


@MODES
def test_streamed_logits_equal_full_forward_on_cuda_needs_cuda(graph):
    model = cuda_model()
    decoder = StreamingDecoder(model, cuda_graph=graph)
    assert decoder.device.type == "cuda"
    assert decoder.backend_name == ("cuda-graph" if graph else "torch")
    tokens = random_tokens(3 * 64 + 20)  # the ring wraps, windows refill
    for p, token in enumerate(tokens):
        logits = decoder.append([token])
        assert logits.device.type == "cuda"
        if p < 20 or p % 7 == 0 or p > 180:
            expected = reference(model, tokens, p, owner_window(decoder, p))
            torch.testing.assert_close(logits, expected, atol=TOL, rtol=0)
    assert owner_window(decoder, len(tokens) - 1) > 64


@MODES
@pytest.mark.parametrize("keep, dropped", [(100, 30), (150, 60), (3, 2)])
def test_rollback_on_cuda_equals_never_appending_needs_cuda(keep, dropped, graph):
    model = cuda_model()
    tokens = random_tokens(keep + 40, seed=3)
    decoder = StreamingDecoder(model, cuda_graph=graph)
    decoder.append(tokens[:keep])
    for token in random_tokens(dropped, seed=4):
        decoder.append([token])
    decoder.rollback(keep)
    clean = StreamingDecoder(model)
    clean.append(tokens[:keep])
    torch.testing.assert_close(decoder.logits(), clean.logits(), atol=TOL, rtol=0)
    for token in tokens[keep:]:
        torch.testing.assert_close(decoder.append([token]), clean.append([token]), atol=TOL, rtol=0)


def test_chunked_prefill_on_cuda_equals_token_by_token_needs_cuda():
    model = cuda_model()
    tokens = random_tokens(200, seed=2)
    one = StreamingDecoder(model, cuda_graph=True)
    for token in tokens:
        expected = one.append([token])
    chunked = StreamingDecoder(model, cuda_graph=True)
    chunked.append(tokens[:3])
    chunked.append(tokens[3:140])
    for token in tokens[140:]:
        got = chunked.append([token])
    torch.testing.assert_close(got, expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("case", range(8))
def test_device_truncation_on_cuda_equals_the_cpu_transform_needs_cuda(case):
    rng = random.Random(case)
    params = SamplingParams(
        temperature=rng.choice((0.5, 1.0, 1.7)),
        top_k=rng.choice((0, 1, 5, 40)),
        top_p=rng.choice((1.0, 0.95, 0.6)),
        min_p=rng.choice((0.0, 0.02, 0.2)),
        density=rng.choice((0.0, 1.5, -2.0)),
    )
    allowed = allowed_mask(random_state(rng), params)
    logits = torch.randn(VOCAB_SIZE, generator=torch.Generator().manual_seed(case)) * 3
    got = truncate_on_device(
        logits.to(CUDA),
        allowed.to(CUDA),
        torch.tensor(knob_values(params), device=CUDA),
        note_on_vector().to(CUDA),
    ).cpu()
    expected = transform(logits, allowed, params)
    assert torch.equal(torch.isfinite(got), torch.isfinite(expected))
    finite = torch.isfinite(expected)
    torch.testing.assert_close(got[finite], expected[finite])


def graph_sampled(seed: int, n: int) -> tuple[list[int], StreamingDecoder]:
    decoder = StreamingDecoder(cuda_model(), cuda_graph=True)
    params = SamplingParams(temperature=1.5, max_note_seconds=0.3, max_polyphony=4)
    state, generator = GrammarState(), torch.Generator().manual_seed(seed)
    decoder.append([BEGIN])
    return [decoder.sample(params, state, generator) for _ in range(n)], decoder


def test_sampling_inside_the_graph_is_exact_seeded_and_guarded_needs_cuda():
    tokens, decoder = graph_sampled(seed=1, n=250)
    eager = StreamingDecoder(cuda_model())
    eager.append([BEGIN])
    for token in tokens:
        expected = eager.append([token])
    torch.testing.assert_close(decoder.logits(), expected, atol=TOL, rtol=0)
    assert all(t < NUM_EVENTS for t in tokens)
    notes = decode_tokens(tokens)
    assert len(notes) > 10
    assert (notes.end - notes.start).max() <= 0.3 + 1e-9  # the grammar guard, on the GPU
    assert graph_sampled(seed=1, n=60)[0] == tokens[:60]
    assert graph_sampled(seed=2, n=60)[0] != tokens[:60]


@MODES
def test_bf16_decoding_on_cuda_stays_close_to_fp32_needs_cuda(graph):
    """bf16 is not exact: measured on the CPU, the tiny model's logits differ from fp32 by
    0.003 at most (scale 0.4) with the same argmax everywhere; a tenfold margin here."""
    fp32, bf16 = cuda_model(), cuda_model(torch.bfloat16)
    decoder = StreamingDecoder(bf16, cuda_graph=graph)
    assert decoder.dtype == torch.bfloat16
    tokens = random_tokens(212)
    agree = 0
    for p, token in enumerate(tokens):
        got = decoder.append([token])
        expected = reference(fp32, tokens, p, owner_window(decoder, p))
        assert float((got - expected).abs().max()) < 0.03
        agree += int(got.argmax() == expected.argmax())
    assert agree >= 0.9 * len(tokens)


def test_bf16_training_on_cuda_learns_and_checkpoints_needs_cuda(tmp_path):
    """livegen-train's loop on the GPU with bf16 autocast: loss falls, the checkpoint loads on
    the CPU and computes what the GPU model computes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from gpu_tasks import make_data

    from livegen.models.checkpoint import load_model
    from livegen.models.config import PerceiverARConfig
    from livegen.training.config import RunConfig, TrainConfig
    from livegen.training.train import read_log, train

    make_data(tmp_path / "data", pieces=24)
    model = PerceiverARConfig(context=128, latents=32, dim=64, heads=2, layers=2)
    settings = TrainConfig(
        steps=60,
        batch_size=16,
        lr=3e-3,
        warmup_steps=5,
        eval_interval=60,
        eval_windows=4,
        checkpoint_interval=60,
        log_interval=1,
        bf16=True,
    )
    result = train(tmp_path / "run", RunConfig(model, settings), tmp_path / "data", device="cuda")
    rows = read_log(tmp_path / "run")
    losses = [float(r["loss"]) for r in rows]
    assert result.state.step == 60 and all(map(torch.isfinite, torch.tensor(losses)))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.3
    cpu = load_model(result.checkpoint / "model", device="cpu")
    gpu = load_model(result.checkpoint / "model", device="cuda")
    tokens = torch.tensor(random_tokens(128, seed=5))[None]
    with torch.no_grad():
        torch.testing.assert_close(gpu(tokens.to(CUDA)).cpu(), cpu(tokens), atol=1e-4, rtol=1e-4)
