"""`livegen-train eval-continuations`: does the model play like the music it continues?

For each MIDI file: the non-drum parts merged into one stream (pedal applied, time 0 at the
first note), the first `prompt_seconds` are the prompt and the next `seconds` the real
continuation. The model continues the prompt exactly as `livegen continue` does
(models/continuation.py: same decoder, sampling controls, grammar guard), and its
continuation is compared with the real one (training/music_stats.py), next to a loop floor
(the prompt's last half repeated), a trivial answer any model should beat.

The prompt is cut at prompt_seconds (notes sounding across the cut end there) and padded with
silence to exactly prompt_seconds, so the model and the real music start at the same moment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from livegen.kernels.errors import LivegenError
from livegen.kernels.time_steps import seconds_to_step
from livegen.kernels.tokenizer import Notes, encode_notes, read_midi, sustained_notes
from livegen.training.music_stats import (
    Comparison,
    compare,
    finite_median,
    mean_pitch,
    mean_polyphony,
    novelty,
)

SCORED = ("density", "polyphony", "key", "rhythm")  # the score: mean of these medians


@dataclass
class EvalOptions:
    prompt_seconds: float = 15.0
    seconds: float = 15.0
    seed: int = 0
    min_notes: int = 8  # a real continuation with fewer notes says too little: file skipped
    follow: object = None  # FollowSettings (models/follow.py) or None

    def validate(self) -> None:
        if not 1.0 <= self.prompt_seconds <= 600 or not 1.0 <= self.seconds <= 600:
            raise LivegenError(
                f"prompt and continuation must be 1..600 s, got {self.prompt_seconds} and "
                f"{self.seconds}"
            )


@dataclass
class Excerpt:
    name: str
    prompt: Notes  # times from the file's first note; ends clipped at prompt_seconds
    real: Notes  # the next `seconds`, times from the prompt's end, ends clipped


@dataclass
class FileResult:
    name: str
    model: Comparison
    loop: Comparison
    real_novelty: float
    notes_per_second: dict[str, float]  # model, loop, real
    polyphony: dict[str, float]
    pitch: dict[str, float]
    capped: bool = False  # the model hit the token cap before its continuation's end


@dataclass
class Report:
    results: list[FileResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def window(notes: Notes, start: float, stop: float) -> Notes:
    """Notes starting in [start, stop), moved to start at 0, ends clipped at stop."""
    keep = np.flatnonzero((notes.start >= start) & (notes.start < stop))
    part = notes.take(keep)
    return Notes(
        part.start - start,
        np.minimum(part.end, stop) - start,
        part.pitch,
        part.velocity,
        part.channel,
    )


def merged_notes(path: Path) -> Notes:
    """The file's non-drum notes as one stream, pedal applied, time 0 at the first note."""
    notes = sustained_notes(read_midi(path)).sorted()
    if len(notes) == 0:
        return notes
    first = float(notes.start[0])
    return Notes(notes.start - first, notes.end - first, notes.pitch, notes.velocity, notes.channel)


def cut_excerpt(name: str, notes: Notes, options: EvalOptions) -> Excerpt | str:
    """The prompt and the real continuation, or the reason the file cannot give them."""
    prompt = window(notes, 0.0, options.prompt_seconds)
    real = window(notes, options.prompt_seconds, options.prompt_seconds + options.seconds)
    if len(prompt) == 0:
        return "no notes"
    if len(real) < options.min_notes:
        return f"{len(real)} notes after the prompt (fewer than {options.min_notes})"
    return Excerpt(name, prompt, real)


def loop_floor(prompt: Notes, prompt_seconds: float, seconds: float) -> Notes:
    """The prompt's last half, repeated from the prompt's end until `seconds` are filled."""
    half = prompt_seconds / 2
    loop = window(prompt, half, prompt_seconds)
    copies = [loop.shifted(k * half) for k in range(math.ceil(seconds / half))]
    return window(Notes.joined(copies), 0.0, seconds)


def prompt_tokens(prompt: Notes, prompt_seconds: float) -> list[int]:
    """The prompt's tokens, padded with silence to exactly prompt_seconds."""
    from livegen.kernels.tokenizer import decode_tokens
    from livegen.models.continuation import time_shift_tokens

    tokens = [int(t) for t in encode_notes(prompt)]
    decoded = decode_tokens(tokens)
    last = float(decoded.end.max()) if len(decoded) else 0.0
    gap = seconds_to_step(prompt_seconds) - seconds_to_step(last)
    return tokens + time_shift_tokens(gap)


def model_continuation(decoder, params, excerpt: Excerpt, options: EvalOptions):  # noqa: ANN001, ANN201
    """(notes, capped): what the model plays after the prompt (times from the prompt's end),
    generated the way `livegen continue` generates, and whether the token cap stopped it."""
    from livegen.kernels.tokenizer import decode_tokens
    from livegen.models.continuation import continue_tokens

    tokens = prompt_tokens(excerpt.prompt, options.prompt_seconds)
    result = continue_tokens(
        decoder, tokens, params, options.seconds, seed=options.seed, follow=options.follow
    )
    notes = decode_tokens([*result.prompt, *result.generated])
    end = result.prompt_seconds + options.seconds
    return window(notes, result.prompt_seconds, end), result.capped


def judge(excerpt: Excerpt, model: Notes, options: EvalOptions, capped: bool = False) -> FileResult:
    p, s = options.prompt_seconds, options.seconds
    loop = loop_floor(excerpt.prompt, p, s)
    parts = {"model": model, "loop": loop, "real": excerpt.real}
    return FileResult(
        name=excerpt.name,
        model=compare(model, excerpt.real, excerpt.prompt, p, s),
        loop=compare(loop, excerpt.real, excerpt.prompt, p, s),
        real_novelty=novelty(excerpt.real, excerpt.prompt, p, s),
        notes_per_second={k: len(v) / s for k, v in parts.items()},
        polyphony={k: mean_polyphony(v) for k, v in parts.items()},
        pitch={k: mean_pitch(v) for k, v in parts.items()},
        capped=capped,
    )


def find_files(inputs: Iterable[Path]) -> list[Path]:
    """MIDI files under the inputs (files or folders), sorted within each input."""
    from livegen.training.data import MIDI_SUFFIXES

    found: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_file():
            found.append(item)
        elif item.is_dir():
            found += sorted(
                p for p in item.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()
            )
        else:
            raise LivegenError(f"{item}: no such file or folder")
    return found


def spread(files: list[Path], limit: int | None) -> list[Path]:
    """At most `limit` files, evenly spaced over the list (every input folder gets a share)."""
    if limit is None or limit >= len(files):
        return files
    if limit < 1:
        raise LivegenError(f"--limit must be >= 1, got {limit}")
    picks = np.linspace(0, len(files) - 1, limit).round().astype(int)
    return [files[i] for i in sorted(set(picks.tolist()))]


def evaluate(
    files: list[Path],
    decoder,  # noqa: ANN001 - a StreamingDecoder
    params,  # noqa: ANN001 - SamplingParams
    options: EvalOptions,
    progress: Callable[[Iterable, int], Iterable] = lambda items, total: items,
) -> Report:
    """Judge every file; unreadable or too short ones are skipped with the reason."""
    report = Report()
    for path in progress(files, len(files)):
        try:
            excerpt = cut_excerpt(str(path), merged_notes(path), options)
        except LivegenError as error:
            report.skipped.append((str(path), getattr(error, "reason", str(error))))
            continue
        if isinstance(excerpt, str):
            report.skipped.append((str(path), excerpt))
            continue
        model, capped = model_continuation(decoder, params, excerpt, options)
        report.results.append(judge(excerpt, model, options, capped))
    return report


def summary(report: Report) -> dict:
    """Medians per candidate (model, loop, real) and the score of each."""
    results = report.results
    out: dict = {"files": len(results), "skipped": [list(s) for s in report.skipped]}
    for who in ("model", "loop"):
        rows = [getattr(r, who) for r in results]
        medians = {
            "density": finite_median([abs(c.density) for c in rows]),
            "density_signed": finite_median([c.density for c in rows]),
            "polyphony": finite_median([abs(c.polyphony) for c in rows]),
            "polyphony_signed": finite_median([c.polyphony for c in rows]),
            "register": finite_median([abs(c.register) for c in rows]),
            "register_signed": finite_median([c.register for c in rows]),
            "key": finite_median([c.key for c in rows]),
            "rhythm": finite_median([c.rhythm for c in rows]),
            "novelty": finite_median([c.novelty for c in rows]),
            "melody": finite_median([c.melody for c in rows]),
            "harmony": finite_median([c.harmony for c in rows]),
        }
        medians["score"] = float(np.mean([medians[k] for k in SCORED])) if rows else math.nan
        out[who] = medians
    out["real"] = {"novelty": finite_median([r.real_novelty for r in results])}
    out["capped"] = sum(r.capped for r in results)
    for who in ("model", "loop", "real"):
        out[who]["notes_per_second"] = finite_median([r.notes_per_second[who] for r in results])
        out[who]["polyphony_mean"] = finite_median([r.polyphony[who] for r in results])
        out[who]["pitch_mean"] = finite_median([r.pitch[who] for r in results])
    out["per_file"] = [asdict(r) for r in results]
    return out


def format_summary(data: dict) -> str:
    rows = [
        ("score (mean of the 4 below)", "score"),
        ("density |log2 ratio|", "density"),
        ("  signed", "density_signed"),
        ("polyphony |log2 ratio|", "polyphony"),
        ("  signed", "polyphony_signed"),
        ("register |semitones|", "register"),
        ("key: 1 - pitch-class overlap", "key"),
        ("rhythm: 1 - IOI overlap", "rhythm"),
        ("novelty vs the prompt", "novelty"),
        ("melody: 1 - top-line steps", "melody"),
        ("harmony: 1 - intervals together", "harmony"),
        ("notes per second", "notes_per_second"),
        ("mean polyphony", "polyphony_mean"),
        ("mean pitch", "pitch_mean"),
    ]
    lines = [
        f"{data['files']} files; medians over files",
        f"{'':32}{'model':>9}{'loop':>9}{'real':>9}",
    ]
    for label, key in rows:
        cells = []
        for who in ("model", "loop", "real"):
            value = data[who].get(key, 0.0 if key in SCORED or key == "score" else math.nan)
            cells.append(f"{value:9.3f}" if not math.isnan(value) else f"{'-':>9}")
        lines.append(f"{label:32}{''.join(cells)}")
    if data.get("capped"):
        lines.append(f"{data['capped']} continuations stopped at the token cap before their end")
    for name, reason in data["skipped"]:
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(lines)
