"""`livegen-train data --audio DIR ... --codec P` (and `--midi DIR ... --render SF`): audio,
or MIDI rendered through FluidSynth, encoded by a codec preset into token shards.

The same data folder as for MIDI (training/data.py and shards.py): the index, the split by a
hash of each file's bytes (so a piece lands in the same split as in its MIDI data), the cache
under DATA/cache/, DATA/skipped.txt for every file that could not be read or held no sound,
the progress bar. What differs is the encoding: each file becomes codec frames, flattened
level by level into ids (kernels/audio_vocab.py), and the index records the codec, its
levels and frame rate (`summary["tokens"]`) so training can check the model agrees.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livegen.kernels.atomic_write import ensure_writable_folder, write_text
from livegen.kernels.audio_vocab import AudioVocab
from livegen.kernels.errors import LivegenError
from livegen.training.audio_io import AUDIO_SUFFIXES
from livegen.training.data import (
    MIDI_SUFFIXES,
    DataOptions,
    Encoded,
    encode_files,
    find_files,
    remove_stale_shards,
    write_skipped,
)
from livegen.training.repair import REPAIRED_FILE
from livegen.training.shards import (
    DataIndex,
    Piece,
    assign_splits,
    summarize,
    write_index,
    write_shards,
)

SILENT_RMS = 1e-4  # a render or recording quieter than this holds no music to learn


@dataclass
class AudioDataOptions(DataOptions):
    codec: str = "codec-24k"  # a codec preset, a codec folder or a codec run
    levels: int = 4  # codec levels kept per frame (the coarsest ones)
    soundfont: str = ""  # renders MIDI input (required with MIDI folders)
    program: int = 0  # the General MIDI program every part is rendered with (0: piano)
    max_seconds: float | None = None  # encode at most this much of each file


@dataclass(frozen=True)
class Recipe:
    """How a worker turns one file into ids (picklable: it crosses into worker processes)."""

    codec: str
    levels: int
    soundfont: str
    program: int
    max_seconds: float | None


_CODECS: dict[str, Any] = {}  # per process: a worker loads the codec once


def _codec(spec: str):
    if spec not in _CODECS:
        import torch

        from livegen.models.codec_preset import open_codec

        torch.set_num_threads(1)
        _CODECS[spec] = open_codec(spec)[0]
    return _CODECS[spec]


def encode_audio_one(job: tuple[str, str, str, Recipe]) -> Encoded:
    """One file -> ids; a bad file is an Encoded with a reason, never an exception."""
    name, path, digest, recipe = job
    try:
        codec = _codec(recipe.codec)
        audio = _load(Path(path), recipe, codec.config.sample_rate)
        if audio.size == 0 or float(np.sqrt(np.mean(audio**2))) < SILENT_RMS:
            return Encoded(name, digest, None, "silent (no sound to learn)")
        tokens = encode_audio(codec, audio, recipe.levels)
    except LivegenError as error:
        return Encoded(name, digest, None, getattr(error, "reason", None) or str(error))
    except Exception as error:  # a decoder bug on a weird file must not end a long build
        return Encoded(name, digest, None, f"unreadable ({type(error).__name__}: {error})")
    return Encoded(name, digest, tokens.astype(np.int16))


def _load(path: Path, recipe: Recipe, sample_rate: int) -> np.ndarray:
    if path.suffix.lower() in MIDI_SUFFIXES:
        from livegen.training.render import render_midi

        return render_midi(path, recipe.soundfont, sample_rate, recipe.program, recipe.max_seconds)
    from livegen.training.audio_io import read_audio

    return read_audio(path, sample_rate, 0.0, recipe.max_seconds)


def encode_audio(codec, audio: np.ndarray, levels: int) -> np.ndarray:
    """Mono audio at the codec's rate -> flattened ids of its first `levels` levels."""
    import torch

    hop = codec.config.hop
    frames = -(-len(audio) // hop)
    padded = np.zeros(frames * hop, dtype=np.float32)
    padded[: len(audio)] = audio
    with torch.no_grad():
        codes = codec.encode(torch.from_numpy(padded)[None], levels)[0].numpy()
    return AudioVocab(levels, codec.config.codebook_size).flatten(codes)


def describe_codec(spec: str, levels: int) -> dict[str, Any]:
    """What the ids mean, for the index; a LivegenError if the codec cannot give `levels`."""
    codec = _codec(spec)
    c = codec.config
    if not 1 <= levels <= c.levels:
        raise LivegenError(f"--levels must be in 1..{c.levels} for this codec, got {levels}")
    weights = hashlib.sha1()
    for tensor in codec.state_dict().values():
        weights.update(tensor.detach().cpu().numpy().tobytes())
    return {
        "kind": "audio",
        "codec": spec,
        "codec_sha1": weights.hexdigest(),
        "levels": levels,
        "codebook_size": c.codebook_size,
        "frame_rate": c.frame_rate,
        "sample_rate": c.sample_rate,
    }


def build_audio_data(
    audio_dirs: list[Path], midi_dirs: list[Path], out: Path, options: AudioDataOptions
) -> DataIndex:
    """Encode audio files (and rendered MIDI files) into shards + index under out."""
    out = ensure_writable_folder(out, "data folder")
    if midi_dirs and not options.soundfont:
        raise LivegenError("MIDI input is rendered first: give --render SOUNDFONT")
    if options.soundfont and not Path(options.soundfont).is_file():
        raise LivegenError(f"{options.soundfont}: soundfont not found")
    files = find_files(audio_dirs, AUDIO_SUFFIXES) + find_files(midi_dirs, MIDI_SUFFIXES)
    if not files:
        raise LivegenError("no audio (*.wav, *.flac, *.ogg, *.mp3) or MIDI files in the input")
    tokens_info = describe_codec(options.codec, options.levels)
    recipe = Recipe(
        options.codec,
        options.levels,
        str(Path(options.soundfont).resolve()) if options.soundfont else "",
        options.program,
        options.max_seconds,
    )
    salt = f"{tokens_info['codec_sha1']}|{recipe.levels}|{recipe.program}|{recipe.max_seconds}"
    salt += f"|{_file_sha1(recipe.soundfont)}"
    encoded = encode_files(files, out, options, encode_audio_one, recipe, salt)
    return _write_data(out, encoded, tokens_info, options, audio_dirs + midi_dirs)


def _file_sha1(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest() if path else ""


def _write_data(out, encoded, tokens_info, options, inputs) -> DataIndex:
    vocab = AudioVocab(tokens_info["levels"], tokens_info["codebook_size"])
    frames_per_second = tokens_info["frame_rate"] * vocab.levels
    pieces: list[Piece] = []
    by_digest: dict[str, np.ndarray] = {}
    skipped: list[dict[str, str]] = []
    duplicates = 0
    for result in encoded:
        if result.tokens is None:
            skipped.append({"file": result.name, "reason": result.reason})
        elif result.digest in by_digest:
            duplicates += 1
        else:
            by_digest[result.digest] = result.tokens
            seconds = round(len(result.tokens) / frames_per_second, 3)
            pieces.append(
                Piece(result.name, result.digest, "train", len(result.tokens), 0, seconds)
            )
    if not pieces:
        raise LivegenError(f"none of the {len(encoded)} files could be encoded (see skipped.txt)")
    assign_splits(pieces, options.val_fraction, options.test_fraction)
    shards = write_shards(
        out,
        pieces,
        lambda p: by_digest[p.hash],
        max_shard_tokens=options.max_shard_tokens,
        frame=(vocab.begin, vocab.end),
    )
    remove_stale_shards(out, {s.file for s in shards})
    index = DataIndex(pieces, shards, summarize(pieces, len(skipped), duplicates), skipped)
    index.summary["inputs"] = [str(Path(f).resolve()) for f in inputs]
    index.summary["tokens_kind"] = tokens_info
    write_index(out, index)
    write_skipped(out, skipped)
    write_text(out / REPAIRED_FILE, "")  # nothing is repaired in audio: no stale MIDI report
    return index


def data_tokens(index: DataIndex) -> dict[str, Any]:
    """What a data folder's ids mean: {"kind": "midi"} or the audio description."""
    return index.summary.get("tokens_kind") or {"kind": "midi"}


def check_data_matches(index: DataIndex, model, data_dir: Path) -> None:
    """A LivegenError when a model config and a data folder speak different token languages."""
    info = data_tokens(index)
    if info["kind"] != model.tokens:
        raise LivegenError(
            f"{data_dir} holds {info['kind']} tokens but the model's [model] tokens = "
            f"{model.tokens!r}"
        )
    if model.tokens != "audio":
        return
    theirs = (info["levels"], info["codebook_size"])
    if theirs != (model.levels, model.codebook_size):
        raise LivegenError(
            f"{data_dir} holds {theirs[0]} levels x {theirs[1]} codes, but the model expects "
            f"{model.levels} x {model.codebook_size}"
        )
    if Path(info["codec"]).name.removesuffix(".toml") != Path(model.codec).name.removesuffix(
        ".toml"
    ):
        raise LivegenError(
            f"{data_dir} was encoded with codec {info['codec']!r}, the model names {model.codec!r}"
        )
