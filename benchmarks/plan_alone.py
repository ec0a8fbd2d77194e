"""What the network adds to the follow controls: the continuation measure with a model that has
no preference at all, under the preset's own follow controls and sampling.

    .venv/bin/python benchmarks/plan_alone.py FOLDER... [--limit 24] [--seeds 0,1,2]
    .venv/bin/python benchmarks/plan_alone.py --data DATA_DIR --split val [--limit 80]
    ... [--follow-rhythm-variation 0.5 --follow-rhythm-shuffle 0]  (eval-continuations' options)

With the rhythm plan on (models/rhythm_plan.py), the plan says when each note starts, how
many start together and how long each lasts, and the key quota which pitch classes may come
next (models/follow.py); the model only picks among what they leave. So the preset's model
is replaced here by one whose logits are all equal (every allowed token as likely), and the
continuations are judged exactly as `livegen-train eval-continuations` judges the model's
(training/continuations.py, same files, seeds and controls). Distances where the plan alone
scores what the model scores are the plan's; where the model does better, that is the
network's part. It runs in seconds a seed, where the model takes minutes, so a change to the
plan can be tried here first; only the key and the register need the model itself.

Prints the medians per seed and their mean, beside the loop floor, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics

import torch

from livegen.kernels.errors import LivegenError
from livegen.kernels.vocab import VOCAB_SIZE
from livegen.models.grammar import MODEL, GrammarState
from livegen.models.preset import load_preset
from livegen.models.sampling import SamplingParams, sample_token
from livegen.training.continuation_cli import (
    add_file_options,
    add_follow_options,
    chosen_files,
    follow_settings,
)
from livegen.training.continuations import EvalOptions, evaluate, summary

SHOWN = (
    "score",
    "density",
    "polyphony",
    "key",
    "rhythm",
    "novelty",
    "register",
    "melody",
    "harmony",
)


class NoPreference:
    """A decoder whose next-token logits are all zero: the controls alone decide (the
    StreamingDecoder calls continue_tokens makes, and nothing else)."""

    device = torch.device("cpu")

    def reset(self) -> None:
        pass

    def append(self, tokens: list[int]) -> None:
        pass

    def sample(
        self,
        params: SamplingParams,
        state: GrammarState,
        generator: torch.Generator | None = None,
        restrict: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> int:
        logits = torch.zeros(VOCAB_SIZE) if bias is None else bias.clone()
        token = sample_token(logits, params, state, generator, restrict)
        state.update(token, MODEL)
        return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_file_options(parser)  # eval-continuations' own: the same files
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--preset", default="presets/piano.toml")
    add_follow_options(parser)  # and its --follow-* overrides
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        preset = load_preset(args.preset)
        params = SamplingParams.from_defaults(preset.sampling)
        follow = follow_settings(args, preset)
        files = chosen_files(args, None)
    except LivegenError as error:
        parser.error(str(error))
    per_seed, loop = {}, {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        options = EvalOptions(seed=seed, follow=follow)
        result = summary(evaluate(files, NoPreference(), params, options))
        per_seed[seed] = {key: result["model"][key] for key in SHOWN}
        loop = {key: result["loop"][key] for key in SHOWN}
        cells = "  ".join(f"{key} {per_seed[seed][key]:.3f}" for key in SHOWN)
        print(f"plan alone, seed {seed}: {cells}", flush=True)
    mean = {key: statistics.mean(row[key] for row in per_seed.values()) for key in SHOWN}
    print(f"plan alone, mean of {len(per_seed)}: " + "  ".join(f"{k} {mean[k]:.3f}" for k in SHOWN))
    print("loop floor: " + "  ".join(f"{k} {loop[k]:.3f}" for k in SHOWN))
    record = {"bench": "plan_alone", "files": result["files"], "preset": args.preset}
    record["follow"] = dataclasses.asdict(follow)
    print(json.dumps(record | {"mean": mean, "per_seed": per_seed, "loop": loop}))


if __name__ == "__main__":
    main()
