"""What the network adds to the follow controls: the continuation measure with a model that has
no preference at all, under the preset's own follow controls and sampling.

    .venv/bin/python benchmarks/plan_alone.py FOLDER... [--limit 24] [--seeds 0,1,2]
    .venv/bin/python benchmarks/plan_alone.py --data DATA_DIR --split val [--limit 80]
    ... [--follow rhythm_variation=0.5 --follow rhythm_shuffle=0]  (FollowSettings fields)

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
from pathlib import Path

import torch

from livegen.kernels.errors import LivegenError
from livegen.kernels.vocab import VOCAB_SIZE
from livegen.models.follow import FollowSettings
from livegen.models.grammar import MODEL, GrammarState
from livegen.models.preset import load_preset
from livegen.models.sampling import SamplingParams, sample_token
from livegen.training.continuation_cli import held_out_files
from livegen.training.continuations import EvalOptions, evaluate, find_files, spread, summary

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


def follow_settings(preset_sampling: object, changes: list[str]) -> FollowSettings:
    """The preset's follow settings with `changes` (FIELD=VALUE, FollowSettings' fields)."""
    settings = FollowSettings.from_defaults(preset_sampling)
    fields = {f.name: f for f in dataclasses.fields(FollowSettings)}
    updates: dict[str, object] = {}
    for change in changes:
        name, _, value = change.partition("=")
        if name not in fields or not value:
            raise LivegenError(f"--follow {change}: want FIELD=VALUE, FIELD one of {list(fields)}")
        kind = type(getattr(settings, name))
        try:
            updates[name] = value in ("1", "true") if kind is bool else kind(value)
        except ValueError:
            raise LivegenError(f"--follow {change}: {value!r} is no {kind.__name__}") from None
    return dataclasses.replace(settings, **updates)


def files_of(args: argparse.Namespace) -> list[Path]:
    if args.data is not None:
        return spread(held_out_files(args.data, args.split), args.limit)
    if not args.inputs:
        raise LivegenError("give MIDI folders, or --data DATA_DIR --split val|test")
    return spread(find_files(args.inputs), args.limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--preset", default="presets/piano.toml")
    parser.add_argument("--follow", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        preset = load_preset(args.preset)
        params = SamplingParams.from_defaults(preset.sampling)
        follow = follow_settings(preset.sampling, args.follow)
        files = files_of(args)
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
