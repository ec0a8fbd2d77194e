"""The Perceiver AR's shape, in one dataclass that model files record as JSON.

context (N) tokens go in; the last `latents` (L) positions are the latents that get logits.
latents == context gives a plain causal transformer from the same code (the baseline).
tokens = "audio" makes it a model of codec tokens (kernels/audio_vocab.py): `levels` codes per
frame of the codec preset `codec`, `codebook_size` codes per level; its vocabulary and special
ids follow from those when they are left at the MIDI defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from livegen.kernels.audio_vocab import AudioVocab
from livegen.kernels.errors import ModelFileError
from livegen.kernels.values import FRACTION, Bound, check_fields
from livegen.kernels.vocab import BEGIN, END, PAD, VOCAB_SIZE

REAL_BOUNDS = {
    "mlp_ratio": Bound(0.0, 64.0, low_open=True),
    "dropout": FRACTION,
    "rope_base": Bound(1.0, 1e9, low_open=True),
}


@dataclass
class PerceiverARConfig:
    vocab_size: int = VOCAB_SIZE
    context: int = 1024  # N: tokens the model sees
    latents: int = 256  # L: last positions that get queries, self-attention and logits
    dim: int = 512
    heads: int = 8
    layers: int = 8  # self-attention blocks over the latents (after the one cross-attention)
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    rope_base: float = 10000.0
    # Recorded so a model file says which ids it was trained with (see kernels/vocab.py).
    pad_id: int = PAD
    begin_id: int = BEGIN
    end_id: int = END
    # What the ids mean: "midi" (kernels/vocab.py) or "audio" (codec codes).
    tokens: str = "midi"
    levels: int = 0  # audio: codec levels per frame, flattened into the sequence
    codebook_size: int = 0  # audio: codes per level
    codec: str = ""  # audio: the codec preset that makes and decodes the codes

    def __post_init__(self) -> None:
        midi_ids = (self.vocab_size, self.pad_id, self.begin_id, self.end_id)
        if self.tokens == "audio" and midi_ids == (VOCAB_SIZE, PAD, BEGIN, END):
            vocab = self.audio_vocab()
            self.vocab_size, self.pad_id = vocab.size, vocab.pad
            self.begin_id, self.end_id = vocab.begin, vocab.end
        self.validate()

    def audio_vocab(self) -> AudioVocab:
        """The codec vocabulary of an audio model (ValueError for a MIDI model)."""
        if self.tokens != "audio":
            raise ValueError("a MIDI model has no codec vocabulary")
        return AudioVocab(self.levels, self.codebook_size)

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.mlp_ratio * self.dim)

    def validate(self) -> None:
        """Raise ValueError naming the first field that makes no sense."""
        for name in ("vocab_size", "context", "latents", "dim", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.layers, int) or isinstance(self.layers, bool) or self.layers < 0:
            raise ValueError(f"layers must be an integer >= 0, got {self.layers!r}")
        if self.latents > self.context:
            raise ValueError(f"latents ({self.latents}) must be <= context ({self.context})")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.head_dim % 2:
            raise ValueError(f"head dim ({self.head_dim}) must be even for rotary embeddings")
        check_fields(self, REAL_BOUNDS)
        self._validate_tokens()
        for name in ("pad_id", "begin_id", "end_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} must be a token id in 0..{self.vocab_size - 1}")

    def _validate_tokens(self) -> None:
        if self.tokens not in ("midi", "audio"):
            raise ValueError(f"tokens must be 'midi' or 'audio', got {self.tokens!r}")
        if self.tokens == "midi":
            return
        if not self.codec or not isinstance(self.codec, str):
            raise ValueError("an audio model must name its codec preset (codec = ...)")
        vocab = self.audio_vocab()
        ids = (self.vocab_size, self.pad_id, self.begin_id, self.end_id)
        if ids != (vocab.size, vocab.pad, vocab.begin, vocab.end):
            raise ValueError(
                f"vocab_size and special ids must be {vocab.size} and "
                f"{vocab.pad}/{vocab.begin}/{vocab.end} for {self.levels} x {self.codebook_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> PerceiverARConfig:
        """Build from a model file's JSON; any problem is a ModelFileError."""
        if not isinstance(data, dict):
            raise ModelFileError(f"model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelFileError(f"model config has unknown keys {unknown}; known: {sorted(known)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as error:
            raise ModelFileError(f"bad model config: {error}") from None

    def num_parameters(self) -> int:
        """Exact parameter count of PerceiverAR(self), without building it."""
        d, h, v = self.dim, self.mlp_hidden, self.vocab_size
        norm = 2 * d
        mlp = norm + 2 * d * h
        cross = norm + d * d + 2 * d * d + d * d + mlp  # norm, q, kv, out, then an MLP
        block = norm + 3 * d * d + d * d + mlp
        return v * d + cross + self.layers * block + norm + d * v
