"""The codec model: streaming equals offline, both quantisers, model files."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from livegen.kernels.errors import ModelFileError
from livegen.models.codec import Codec, stream_round_trip
from livegen.models.codec_config import CodecConfig
from livegen.models.codec_files import load_codec, save_codec
from livegen.models.quantizers import ArgmaxQuantizer, ResidualVQ


def tiny(**changes) -> CodecConfig:
    base = dict(
        sample_rate=8000, hop=64, fold=4, analysis_window=64, channels=16, encoder_depth=2,
        decoder_depth=2, kernel=3, latent_dim=8, levels=3, codebook_size=16, min_levels=1,
    )  # fmt: skip
    base.update(changes)
    return CodecConfig(**base)


def trained(config: CodecConfig, seed: int = 0) -> Codec:
    """A codec after a few training forwards (codebooks initialised, EMA moved)."""
    torch.manual_seed(seed)
    model = Codec(config)
    model.train()
    audio = torch.randn(4, config.hop * 12) * 0.3
    for _ in range(3):
        model(audio, torch.tensor([1, 2, 3, 3]))
    return model.eval()


def stream(model: Codec, audio: torch.Tensor, frames_per_call: int):
    hop = model.config.hop
    state = model.initial_state(audio.shape[0])
    codes, out = [], []
    for start in range(0, audio.shape[1], hop * frames_per_call):
        c = model.encode_step(audio[:, start : start + hop * frames_per_call], state)
        codes.append(c)
        out.append(model.decode_step(c, state))
    return torch.cat(codes, 1), torch.cat(out, 1)


@pytest.mark.parametrize("quantizer", ["rvq", "argmax"])
@pytest.mark.parametrize("frames_per_call", [1, 3])
def test_streamed_output_equals_offline(quantizer: str, frames_per_call: int) -> None:
    model = trained(tiny(quantizer=quantizer, code_dim=4 if quantizer == "rvq" else 0))
    hop, n = model.config.hop, frames_per_call
    audio = torch.randn(2, hop * 15) * 0.3
    # Encoder: streamed latents equal the offline ones.
    with torch.no_grad():
        offline_z = model.encoder(audio)
        state = model.encoder.initial_state(2)
        parts = []
        for start in range(0, audio.shape[1], hop * n):
            z, state = model.encoder.step(audio[:, start : start + hop * n], state)
            parts.append(z)
    assert (torch.cat(parts, 1) - offline_z).abs().max() < 1e-5
    # Whole round trip: the same codes (a float tie could flip one, none does here) and the
    # same samples.
    streamed_codes, streamed = stream(model, audio, n)
    assert torch.equal(streamed_codes, model.encode(audio)) or quantizer == "rvq"
    offline = model.decode(streamed_codes)
    assert offline.abs().max() > 1e-3  # a real signal, not zeros on both sides
    assert (streamed - offline).abs().max() < 1e-5


def test_decoder_output_lags_by_the_delay_and_nothing_sees_the_future() -> None:
    model = trained(tiny())
    audio = torch.randn(1, model.config.hop * 10) * 0.3
    changed = audio.clone()
    changed[:, model.config.hop * 6 :] = 0.0  # change the future after frame 5
    a, b = model.decode(model.encode(audio)), model.decode(model.encode(changed))
    final = model.config.hop * 6  # samples before this are final once frame 5 is decoded
    assert torch.allclose(a[:, :final], b[:, :final], atol=1e-6)
    assert not torch.allclose(a, b)
    assert model.config.latency_ms == pytest.approx(1000 * (64 + 16) / 8000)


def test_rvq_kmeans_init_and_ema_move_codes_towards_the_data() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(tiny(levels=1, codebook_size=4, dead_threshold=0.0))
    centres = torch.tensor([[5.0] * 8, [-5.0] * 8, [5.0, -5.0] * 4, [-5.0, 5.0] * 4])
    data = centres[torch.randint(4, (256,))] + 0.1 * torch.randn(256, 8)
    rvq.train()
    out = rvq(data.view(1, 256, 8))
    book = rvq.codebooks[0]
    assert bool(book.initialized)
    # k-means found the four clusters: every code sits near one centre, all four are used.
    nearest = torch.cdist(book.embed, centres).min(dim=1).values
    assert nearest.max() < 0.5
    assert len(out.codes.unique()) == 4
    assert out.loss < 0.05  # commitment: the data sits close to its codes


def test_dead_codes_restart_on_batch_vectors_with_fresh_ema_statistics() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(tiny(levels=1, codebook_size=8, dead_threshold=0.5, ema_decay=0.5))
    rvq.train()
    rvq(torch.randn(1, 64, 8))  # initialise
    book = rvq.codebooks[0]
    book.embed[3] = 1e3  # far from everything: never chosen, its count decays to zero
    book.embed_avg[3] = 1e3
    batch = torch.randn(1, 64, 8)
    for _ in range(6):
        rvq(batch)
    assert book.embed[3].abs().max() < 100  # moved onto the data
    # Reset statistics are consistent with the new code (embed_avg / count == embed)
    ratio = book.embed_avg[3] / book.cluster_size[3]
    assert torch.allclose(ratio, book.embed[3], atol=1e-4) or book.cluster_size[3] > 0.5


def test_quantizer_dropout_leaves_out_the_levels_past_the_count() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(tiny(levels=3))
    rvq.train()
    z = torch.randn(2, 10, 8)
    rvq(z)
    rvq.eval()
    out = rvq(z, torch.tensor([1, 3]))
    assert torch.allclose(out.quantized[0], rvq.decode(out.codes[:1, :, :1])[0], atol=1e-6)
    assert torch.allclose(out.quantized[1], rvq.decode(out.codes[1:])[0], atol=1e-6)
    assert torch.equal(rvq.encode(z, 2), out.codes[..., :2])


def test_low_dimensional_codes_are_unit_vectors() -> None:
    torch.manual_seed(0)
    rvq = ResidualVQ(tiny(code_dim=4))
    rvq.train()
    rvq(torch.randn(2, 40, 8))
    for book in rvq.codebooks:
        assert torch.allclose(book.embed.norm(dim=1), torch.ones(16), atol=1e-5)


def test_argmax_quantizer_is_one_hot_forward_and_passes_gradients_back() -> None:
    torch.manual_seed(0)
    q = ArgmaxQuantizer(tiny(quantizer="argmax"))
    z = torch.randn(2, 10, 8, requires_grad=True)
    out = q(z)
    expected = q.decode(out.codes)
    assert torch.allclose(out.quantized, expected, atol=1e-6)  # forward: the chosen codes
    (out.quantized.pow(2).sum() + out.loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # straight-through reached z
    assert q.logits.weight.grad.abs().sum() > 0


def test_argmax_diversity_loss_is_one_when_uniform_and_k_when_collapsed() -> None:
    q = ArgmaxQuantizer(tiny(quantizer="argmax", levels=1, codebook_size=4))
    with torch.no_grad():
        q.logits.weight.zero_()
        q.logits.bias.fill_(1.0)  # every code equally active: p uniform
    assert q(torch.randn(1, 5, 8)).loss.item() == pytest.approx(1.0, abs=1e-4)
    with torch.no_grad():
        q.logits.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))  # all mass on code 0
    assert q(torch.randn(1, 5, 8)).loss.item() == pytest.approx(4.0, abs=1e-3)


def test_codec_file_round_trip_with_and_without_training_state(tmp_path) -> None:
    model = trained(tiny())
    audio = torch.randn(1, model.config.hop * 6) * 0.3
    reference = model.decode(model.encode(audio))
    save_codec(model, tmp_path / "full")
    save_codec(model, tmp_path / "slim", inference_only=True, dtype=torch.float16)
    full = load_codec(tmp_path / "full")
    assert torch.equal(full.decode(full.encode(audio)), reference)
    slim = load_codec(tmp_path / "slim")
    assert F.l1_loss(slim.decode(slim.encode(audio)), reference) < 1e-2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{}")
    with pytest.raises(ModelFileError):
        load_codec(tmp_path / "bad")


def test_config_rejects_absurd_values() -> None:
    with pytest.raises(ValueError, match="hop"):
        CodecConfig(hop=100, fold=3)
    with pytest.raises(ValueError, match="quantizer"):
        CodecConfig(quantizer="fsq")
    assert CodecConfig().kbps() == pytest.approx(5.0)
    assert CodecConfig().latency_ms == pytest.approx(20.0)


@pytest.mark.parametrize("changes", [dict(), dict(code_dim=4), dict(quantizer="argmax")])
def test_numpy_streaming_step_matches_the_torch_modules(changes) -> None:
    import numpy as np

    from livegen.models.codec_fast import FastCodec, fast_round_trip

    model = trained(tiny(**changes))
    hop = model.config.hop
    audio = (torch.randn(1, hop * 12) * 0.3).numpy()[0]
    state, fast = model.initial_state(1), FastCodec(model)
    for t in range(12):
        frame = audio[t * hop : (t + 1) * hop]
        codes = model.encode_step(torch.from_numpy(frame)[None], state)
        fast_codes = fast.encode_frame(frame)
        assert np.array_equal(codes[0, 0].numpy(), fast_codes) or "code_dim" in changes
        expected = model.decode_step(codes, state)[0].numpy()
        assert np.abs(fast.decode_frame(codes[0, 0].numpy()) - expected).max() < 1e-5
    trip = fast_round_trip(model, audio, 2)
    reference = stream_round_trip(model, torch.from_numpy(audio)[None], 2)
    assert trip.audio.shape == reference.audio.shape == (1, len(audio))
    assert trip.frame_seconds.shape == (trip.codes.shape[1], 2)
    if "code_dim" not in changes:  # (a float tie can flip a projected code)
        assert torch.equal(trip.codes, reference.codes)
        assert (trip.audio - reference.audio).abs().max() < 1e-5
