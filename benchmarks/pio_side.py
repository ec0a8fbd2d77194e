"""krasserm/perceiver-io's side of bench_vs_perceiver_io.py: runs INSIDE the perceiver-io venv.

Builds perceiver-io 0.11's Perceiver AR (its CausalSequenceModel, wrapped in its own Hugging Face
PerceiverCausalSequenceModel so decoding goes through its `generate` with the KV cache) at the
size given on the command line, with the settings of its symbolic-audio (MIDI) training script:
rotary positions on all channels (abs_pos_emb=False), output norm, no output bias. Random
weights: this measures speed and exactness, not quality.

Figures:
- speed: wall time between consecutive tokens of one `generate(use_cache=True)` call (greedy),
  after a prompt of `--prompt` tokens (default: a full window, so it slides at every step);
  the first token (prefill) is reported apart.
- drift: the logits its cached path produced at step t against a fresh full forward over the
  same window (what `generate(use_cache=False)` computes), max abs difference.

Drift has two sources in perceiver-io (read from perceiver/model/core/modules.py and
huggingface.py): every token enters the cache as a latent, so its cross-attention K/V carry
the latent norm (q_norm) even after it slides into the prefix, where a fresh pass uses kv_norm;
and the cache keeps the latents' hidden states from when each was computed (rolling self-attention
window of L-1, cross-attention over an older window) where a fresh pass recomputes them over
the current window. With untrained LayerNorms (weight 1, bias 0) the first source is invisible,
so the model's LayerNorms get trained-like random affine parameters (--norm-jitter). The drift
is measured again with the prefix norm set equal to the latent norm (everything else the same):
that run shows the second source alone.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict

import torch
import transformers
from perceiver.model.core import CausalSequenceModel, CausalSequenceModelConfig
from perceiver.model.core.huggingface import PerceiverCausalSequenceModel
from transformers import PretrainedConfig, StoppingCriteria, StoppingCriteriaList

EVENT_IDS = 388  # prompt tokens are drawn from the 388 performance events (no specials)


class BenchConfig(PretrainedConfig):
    """Carries the backend config, as perceiver-io's own PerceiverSymbolicAudioModelConfig does
    (that module also imports pretty_midi and Lightning, which this benchmark does not need)."""

    model_type = "livegen-bench-perceiver-ar"

    def __init__(self, model_config: dict | None = None, **kwargs) -> None:
        self.model_config = model_config or {}
        super().__init__(**kwargs)


class BenchModel(PerceiverCausalSequenceModel):
    """perceiver-io's HF wrapper: its prepare_inputs_for_generation, cache truncation, generate."""

    config_class = BenchConfig

    def __init__(self, config: BenchConfig) -> None:
        super().__init__(config)
        backend = CausalSequenceModelConfig.create(**config.model_config)
        self.backend_model = CausalSequenceModel(backend)


class StepClock(StoppingCriteria):
    """generate() calls this once per new token, right after appending it: a per-token clock."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def __call__(self, input_ids, scores, **kwargs) -> bool:
        self.stamps.append(time.perf_counter())
        return False


def build_model(args: argparse.Namespace) -> BenchModel:
    backend = CausalSequenceModelConfig(
        vocab_size=args.vocab,
        max_seq_len=args.context,
        max_latents=args.latents,
        num_channels=args.dim,
        num_heads=args.heads,
        num_self_attention_layers=args.layers,
        cross_attention_widening_factor=4,
        self_attention_widening_factor=4,
        cross_attention_dropout=0.0,
        output_norm=True,
        output_bias=False,
        abs_pos_emb=False,
    )
    model = BenchModel(BenchConfig(asdict(backend), is_decoder=True, pad_token_id=args.vocab - 3))
    return model.eval()


def set_norms(model: torch.nn.Module, jitter: float, seed: int) -> None:
    """LayerNorm affine parameters like a trained model's (jitter > 0) or identity (jitter 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                w, b = module.weight, module.bias
                w.copy_(1.0 + jitter * torch.randn(w.shape, generator=gen))
                b.copy_(jitter * torch.randn(b.shape, generator=gen))


def share_cross_norms(model: BenchModel) -> None:
    """Give the prefix (kv_norm) the latent norm's (q_norm) parameters: no norm mismatch left."""
    cross = model.backend_model.cross_attention[0].module  # Residual(CrossAttention)
    cross.kv_norm.load_state_dict(cross.q_norm.state_dict())


def generate(model: BenchModel, prompt: torch.Tensor, new_tokens: int, latents: int):
    """One cached greedy generate: (sequences [1, P+T], scores [T, V], token stamps [T], t0)."""
    clock = StepClock()
    start = time.perf_counter()
    out = model.generate(
        input_ids=prompt,
        num_latents=min(latents, prompt.shape[1]),
        max_new_tokens=new_tokens,
        do_sample=False,
        use_cache=True,
        output_scores=True,
        return_dict_in_generate=True,
        stopping_criteria=StoppingCriteriaList([clock]),
        pad_token_id=model.config.pad_token_id,
    )
    scores = torch.cat(out.scores, dim=0)  # greedy, no processors: the raw logits
    return out.sequences, scores, clock.stamps, start


def fresh_logits(model: BenchModel, window: torch.Tensor, latents: int) -> torch.Tensor:
    """Next-token logits from a full forward over `window` (generate's use_cache=False path)."""
    n = window.shape[1]
    out = model(input_ids=window, prefix_len=n - min(latents, n), use_cache=False)
    return out.logits[0, -1]


def drift_at(model, sequences, scores, prompt_len, context, latents, steps) -> dict[str, dict]:
    """For each step t (1 = first generated token): cached logits vs fresh full forward."""
    result = {}
    for t in steps:
        end = prompt_len + t - 1  # the logits of step t predict sequences[:, end]
        window = sequences[:, max(0, end - context) : end]
        ref = fresh_logits(model, window, latents)
        got = scores[t - 1]
        result[str(t)] = {
            "max_abs": float((got - ref).abs().max()),
            "logit_std": float(ref.std()),
            "same_argmax": bool(got.argmax() == ref.argmax()),
        }
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--layers", type=int, default=8, help="self-attention layers")
    parser.add_argument("--context", type=int, default=4096, help="N (max_seq_len)")
    parser.add_argument("--latents", type=int, default=256, help="L (max_latents)")
    parser.add_argument("--vocab", type=int, default=391)
    parser.add_argument("--prompt", type=int, default=None, help="prompt tokens (default N)")
    parser.add_argument("--tokens", type=int, default=300, help="new tokens to generate")
    parser.add_argument("--drift-steps", default="1,2,4,16,64,128,256,300", help="'' for none")
    parser.add_argument("--norm-jitter", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    prompt_len = args.prompt or args.context
    prompt = torch.randint(
        0, EVENT_IDS, (1, prompt_len), generator=torch.Generator().manual_seed(args.seed)
    )
    steps = sorted(
        {int(s) for s in args.drift_steps.split(",") if s and 1 <= int(s) <= args.tokens}
    )

    model = build_model(args)
    set_norms(model, args.norm_jitter, args.seed + 1)
    n_params = sum(p.numel() for p in model.backend_model.parameters())

    with torch.inference_mode():
        generate(model, prompt, 4, args.latents)  # warm-up: allocator, first-call paths
        sequences, scores, stamps, start = generate(model, prompt, args.tokens, args.latents)
        per_token = [1e3 * (b - a) for a, b in zip(stamps, stamps[1:], strict=False)]
        drift = drift_at(model, sequences, scores, prompt_len, args.context, args.latents, steps)
        drift_shared = {}
        if steps:
            share_cross_norms(model)
            seq2, scores2, _, _ = generate(model, prompt, max(steps), args.latents)
            drift_shared = drift_at(
                model, seq2, scores2, prompt_len, args.context, args.latents, steps
            )

    line = {
        "impl": "krasserm/perceiver-io 0.11.0 (HF generate, use_cache=True)",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "config": {
            "dim": args.dim,
            "heads": args.heads,
            "layers": args.layers,
            "context": args.context,
            "latents": args.latents,
            "vocab": args.vocab,
            "prompt": prompt_len,
            "tokens": args.tokens,
            "threads": args.threads,
            "norm_jitter": args.norm_jitter,
        },
        "params": n_params,
        "prefill_ms": 1e3 * (stamps[0] - start),
        "per_token_ms": {
            "p50": percentile(per_token, 50),
            "p99": percentile(per_token, 99),
            "max": max(per_token),
            "mean": sum(per_token) / len(per_token),
        },
        "tokens_per_s": 1e3 * len(per_token) / sum(per_token),
        "drift": drift,
        "drift_shared_norms": drift_shared,
        "drift_max_abs": max((d["max_abs"] for d in drift.values()), default=None),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
