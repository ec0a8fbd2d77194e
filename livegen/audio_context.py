"""The audio model's context as a timeline of codec frames: what was heard, encoded frame by
frame, and what the model wrote, each frame in its place; rollback to "now" when the player
cuts the model off.

Codec frame j is device frames [j * slot, (j + 1) * slot) of the audio callback's output
(livegen/audio_rings.py). The context holds frames base_frame, base_frame + 1, ... in order,
each as its K level tokens (docs/AUDIO_MODEL.md: frame by frame, level 0 first), so frame j
sits at position base_position + (j - base_frame) * K and rolling back to a frame is moving
the decoder's write position there. Every frame is either heard (the callback's output, which
the streaming encoder turns into codes as it comes) or the model's own: while the model
writes, the heard frames of the same time are not appended (its tokens stand for them); after
a cut they are.
"""

from __future__ import annotations

import numpy as np

from livegen.audio_rings import AudioRings
from livegen.resampling import Resampler

LISTEN_BATCH = 8  # heard frames appended at once (a prefill of 32 tokens costs half of 8 x 4)
KEEP_FRAMES = 512  # heard codes kept (8 s): a rollback re-appends the heard frames it needs


class AudioContext:
    def __init__(self, decoder, encoder, vocab, rings: AudioRings, factor: int) -> None:  # noqa: ANN001
        """decoder: a StreamingDecoder of the audio model; encoder: a FastCodec (its encoder
        side hears); vocab: the model's AudioVocab."""
        self.decoder, self.encoder, self.vocab, self.rings = decoder, encoder, vocab, rings
        self.levels = vocab.levels
        self.slot = rings.layout.slot
        self.down = Resampler(factor)
        self.heard: dict[int, np.ndarray] = {}  # codec frame -> its heard codes
        self.codes: dict[int, np.ndarray] = {}  # codec frame -> the codes the context holds
        self.encoded = 0  # the next codec frame to encode from the heard ring
        self.frame = 0  # the next codec frame the context takes
        self.model_from: int | None = None  # the model's frames in the context start here
        self.decoder.reset()
        self.decoder.append([vocab.begin])
        self.base_frame, self.base_position = 0, self.decoder.position

    def position(self, frame: int) -> int:
        return self.base_position + (frame - self.base_frame) * self.levels

    @property
    def now_frame(self) -> int:
        """The codec frame the callback is rendering."""
        return self.rings.rendered // self.slot

    # ---- hearing -----------------------------------------------------------------------------

    def listen(self) -> int:
        """Encode every whole heard frame the callback has put out since; returns how many."""
        rendered, slot = self.rings.rendered, self.slot
        if rendered - self.encoded * slot > len(self.rings.heard) - slot:
            self._jump(rendered // slot - 1)  # fell a ring behind: start again from now
        done = 0
        while (self.encoded + 1) * slot <= rendered:
            start = self.encoded * slot
            audio = self.down.down(self.rings.read_heard(start, start + slot))
            self.heard[self.encoded] = self.encoder.encode_frame(audio, self.levels)
            self.heard.pop(self.encoded - KEEP_FRAMES, None)
            self.encoded += 1
            done += 1
        return done

    def _jump(self, frame: int) -> None:
        """The worker was away for longer than the heard ring holds: the encoder and the
        context go on from `frame` (a gap in the timeline, never a wrong position)."""
        self.encoder.reset()
        self.heard.clear()
        self.encoded = frame
        if self.model_from is None:
            self.frame = self.base_frame = frame
            self.base_position = self.decoder.position

    def take_heard(self, force: bool = False) -> int:
        """Append the heard frames the context is waiting for (in batches, or all when
        `force`: the model is about to write); returns how many."""
        first, last = self.frame, self.frame
        while last in self.heard:
            last += 1
        count = last - first
        if count == 0 or (count < LISTEN_BATCH and not force):
            return 0
        codes = [self.heard[j] for j in range(first, last)]
        self.decoder.append(self.vocab.flatten(np.stack(codes)).tolist())
        for j, frame_codes in zip(range(first, last), codes):
            self._keep(j, frame_codes)
        self.frame = last
        self.model_from = None  # heard frames follow the model's: those stay for good
        return count

    def _keep(self, j: int, codes: np.ndarray) -> None:
        self.codes[j] = codes
        self.codes.pop(j - KEEP_FRAMES, None)

    # ---- the model's frames ------------------------------------------------------------------

    def begin_model(self) -> None:
        """The model writes from the context's end on; heard frames of that time are not
        appended from now on."""
        self.model_from = self.frame

    def put_model(self, codes: np.ndarray) -> int:
        """The model's frame (its tokens already appended): in the timeline; its number."""
        j = self.frame
        self._keep(j, codes)
        self.frame += 1
        return j

    def end_model(self) -> None:
        """The turn is written: heard frames follow its last frame once their time comes.
        Until then (its last frames are written ahead of the sound), a cut may still roll
        the model's frames back."""

    def roll_back(self, frame: int) -> int:
        """Drop the model's frames from `frame` on (never a heard one): the context ends
        where the model began or at `frame`, whichever is later; returns the frames dropped."""
        if self.model_from is None:
            return 0
        target = max(frame, self.model_from, self.base_frame)
        dropped = self.frame - target
        if dropped > 0:
            self.decoder.rollback(self.position(target))
            for j in range(target, self.frame):
                self.codes.pop(j, None)
            self.frame = target
        self.model_from = None
        return max(0, dropped)

    def recent_codes(self, frames: int) -> list[np.ndarray]:
        """The codes of the context's last `frames` frames that it still keeps, in order."""
        return [self.codes[j] for j in range(self.frame - frames, self.frame) if j in self.codes]
