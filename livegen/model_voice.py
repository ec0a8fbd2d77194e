"""The audio model's voice in the audio callback: its decoded frames mixed into each block, a
crossfade when the player cuts it off, and what was heard handed back to the worker.

Runs inside CallbackRenderer.callback (livegen/audio_out.py), so it never waits: it reads the
model ring (livegen/audio_rings.py) slot by slot and plays what is there. A slot that is not
there when its time comes is silence, counted (a late frame) if the model was in the middle of
a turn. A cut (the player played: CancelAfter with the new epoch) fades the old future out
over FADE_SECONDS from the cut's frame and plays nothing of it after: no click, no old future.
"""

from __future__ import annotations

import numpy as np

from livegen.audio_rings import (
    ACCEPT,
    ANCHOR,
    FIRST,
    FLAG_BITS,
    LAST,
    LATENCY,
    AudioRings,
    RingLayout,
)

FADE_SECONDS = 0.005


class ModelVoice:
    def __init__(self, layout: RingLayout, latency_frames: int) -> None:
        self.rings = AudioRings.attach(layout)
        self.slot_len = layout.slot
        self.sr = layout.sample_rate
        self.epoch = 0  # slots of earlier epochs were cut
        self.cut_at = 0  # frames before this still play the epoch before the last cut
        self.old_epoch = 0
        self.fade = np.zeros(max(1, round(FADE_SECONDS * layout.sample_rate)), np.float32)
        self.fade_at = 0  # absolute frame where the fade-out's first sample plays
        self.ramp = np.linspace(1.0, 0.0, len(self.fade), dtype=np.float32)
        self.slot = np.zeros(layout.slot, np.float32)
        self.mono = np.zeros(8192, np.float32)
        self.rings.header[LATENCY] = latency_frames
        self.in_turn = False  # the last slot played was a model frame, not its turn's last
        self.frames_played = 0
        self.late_frames = 0  # frames missing from the ring mid-turn when their time came
        self.onsets = 0  # turns whose first frame played
        self.last_onset: float | None = None  # session time its first sample went out

    def set_anchor(self, anchor: float) -> None:
        self.rings.header[ANCHOR] = anchor

    def cut(self, frame: int, epoch: int) -> None:
        """From `frame` on, play nothing of epochs before `epoch`; fade out what would have."""
        if epoch <= self.epoch:
            return
        self.old_epoch, self.epoch, self.cut_at = self.epoch, epoch, frame
        # The old future's first samples, faded, are played over the cut.
        n, done = len(self.fade), 0
        self.fade[:] = 0.0
        while done < n:
            at = frame + done
            j, offset = divmod(at, self.slot_len)
            take = min(n - done, self.slot_len - offset)
            if self.rings.read_slot(j, self.old_epoch, self.slot):
                self.fade[done : done + take] = self.slot[offset : offset + take]
            done += take
        self.fade *= self.ramp
        self.fade_at = frame
        self.in_turn = False
        self.rings.header[ACCEPT] = epoch

    def mix(self, out: np.ndarray, start: int, now: float) -> None:
        """Add the model's frames for [start, start + len(out)) to both channels of `out`;
        `now` is the session time this block goes out (the reaction's end)."""
        n = len(out)
        mono = self.mono[:n]
        mono[:] = 0.0
        at = start
        while at < start + n:
            j, offset = divmod(at, self.slot_len)
            take = min(start + n - at, self.slot_len - offset)
            self._slot(j, offset, take, mono[at - start : at - start + take], now - start / self.sr)
            at += take
        self._fade_into(mono, start)
        out += mono[:, None]

    def _slot(self, j: int, offset: int, take: int, into: np.ndarray, zero: float) -> None:
        """Slot j's samples [offset, offset + take) into `into`; `zero`: the session time at
        which the block's clock would have written frame 0."""
        rings, begins = self.rings, offset == 0
        got = rings.read_slot(j, self.epoch, self.slot)
        if got:
            into[:] = self.slot[offset : offset + take]
        elif j * self.slot_len < self.cut_at and rings.read_slot(j, self.old_epoch, self.slot):
            # the cut falls inside this slot: the old epoch plays up to it
            keep = max(0, min(take, self.cut_at - j * self.slot_len - offset))
            into[:keep] = self.slot[offset : offset + keep]
            return
        if not begins:
            return
        if got:
            flags = got - 4
            self.frames_played += 1
            if flags & FIRST:  # its sound begins this many samples into the slot
                self.onsets += 1
                self.last_onset = zero + (j * self.slot_len + (flags >> FLAG_BITS)) / self.sr
            self.in_turn = not flags & LAST
        elif self.in_turn:
            self.late_frames += 1

    def _fade_into(self, mono: np.ndarray, start: int) -> None:
        lo = max(start, self.fade_at)
        hi = min(start + len(mono), self.fade_at + len(self.fade))
        if lo < hi:
            mono[lo - start : hi - start] += self.fade[lo - self.fade_at : hi - self.fade_at]

    def heard(self, block: np.ndarray, start: int) -> None:
        self.rings.write_heard(block, start)

    def close(self) -> None:
        self.rings.close()
