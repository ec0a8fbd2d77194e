"""`livegen bench` on a real tiny preset: the JSON figures, the verdict, bad settings."""

from __future__ import annotations

import json

import pytest
import torch

from livegen.benchmark import NEEDED_TOKENS_PER_S, BenchResult, run_bench
from livegen.cli import main
from livegen.models.checkpoint import load_model
from tests.presets import tiny_preset

KEYS = (
    "ms_per_token_p50",
    "ms_per_token_p99",
    "tokens_per_s",
    "recompute_ms_per_token",
    "speedup_vs_recompute",
    "prefill_ms",
    "refill_ms",
)


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # the command sets --threads (1); give the suite its own back


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return tiny_preset(tmp_path_factory.mktemp("preset"))


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_bench_json(preset, capsys, quantize):
    args = ["bench", "--preset", str(preset), "--tokens", "40", "--json", "--quantize", quantize]
    assert main([*args, "--recompute-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    figures = json.loads(out)
    for key in KEYS:
        assert figures[key] > 0, key
    assert figures["ms_per_token_p50"] <= figures["ms_per_token_p99"]
    assert figures["ms_per_token_p99"] <= figures["ms_per_token_max"]
    ratio = figures["recompute_ms_per_token"] / figures["ms_per_token_p50"]
    assert figures["speedup_vs_recompute"] == pytest.approx(ratio)
    assert figures["needed_tokens_per_s"] == NEEDED_TOKENS_PER_S
    assert figures["realtime"] == (figures["delivered_tokens_per_s"] >= NEEDED_TOKENS_PER_S)
    assert figures["device"] == ("cpu int8 dynamic" if quantize == "int8" else "cpu float32")
    assert (figures["context"], figures["latents"], figures["prefill_tokens"]) == (64, 16, 64)
    assert figures["threads"] == 1


def test_bench_text_report(preset, capsys):
    assert main(["bench", "--preset", str(preset), "--tokens", "20", "--context", "100"]) == 0
    out = capsys.readouterr().out
    assert "prefill of 100 tokens" in out
    assert "full recompute" in out
    assert "keeps up" in out or "does NOT keep up" in out


def test_run_bench_returns_a_dataclass_for_the_tui(preset):
    torch.set_num_threads(1)
    model = load_model(preset.parent / "tiny")
    result = run_bench(model, tokens=10, recompute_tokens=2, context_tokens=20)
    assert isinstance(result, BenchResult)
    assert result.prefill_tokens == 20 and result.tokens_per_s > 0
    assert "tokens/s" in result.verdict()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tokens", "0"], "argument --tokens: must be an integer >= 1, got '0'"),
        (["--threads", "0"], "argument --threads: must be an integer in 1..1024, got '0'"),
        (["--device", "cuda"], "no CUDA GPU"),
        (["--preset", "no-such-preset"], "no preset named"),
    ],
)
def test_bench_bad_settings(preset, capsys, extra, message):
    if torch.cuda.is_available() and "cuda" in extra:
        pytest.skip("this machine has a GPU, so --device cuda is valid here")
    assert main(["bench", "--preset", str(preset), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
