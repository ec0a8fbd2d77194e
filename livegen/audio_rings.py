"""The shared memory between the audio callback and the audio model's worker (an audio preset).

Two rings, one block of shared memory, no locks (the callback never waits):

- HEARD: what the callback put out (the player's sound and the model's, mono, at the device's
  rate), written block by block at its absolute frame; the worker reads it behind the callback
  and encodes it into the model's context.
- MODEL: the model's decoded audio, one slot per codec frame (device rate), each tagged with
  its codec frame number, the epoch of the turn that wrote it and flags (first / last frame of
  a turn). The worker writes ahead of the callback; the callback mixes a slot only if its tag
  names the frame it is playing and an epoch not yet cut.

A header says where the callback is: the session time of frame 0 (`anchor`), the fixed latency
it adds, how many frames it has rendered, and the epoch it accepts. A slot is written
tag-first-invalidated, samples, then tag: a reader that finds the same frame number before and
after its copy read a whole slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

FIRST, LAST = 1, 2  # slot flags: the first / last frame of a model turn
FLAG_BITS = 2  # above them, in a turn's first frame: the sample at which its sound begins
# Header fields (float64): the callback writes them, the worker reads them.
ANCHOR, LATENCY, RENDERED, ACCEPT, INPUT_LOUD = 0, 1, 2, 3, 4
INPUT_THRESHOLD = 0.003  # RMS of an --audio-in block above this: the player is sounding
_HEADER = 8


@dataclass(frozen=True)
class RingLayout:
    """What both sides need to map the block (picklable: it crosses to both children)."""

    name: str
    sample_rate: int  # the device's
    slot: int  # device frames per codec frame
    slots: int  # model ring capacity, in codec frames
    heard: int  # heard ring capacity, in device frames

    @property
    def nbytes(self) -> int:
        return 8 * _HEADER + 8 * 3 * self.slots + 4 * self.slots * self.slot + 4 * self.heard


class AudioRings:
    """Views on the shared block. `create` makes it (the engine owns and unlinks it);
    `attach` maps an existing one (the audio process, the worker)."""

    def __init__(self, layout: RingLayout, memory: shared_memory.SharedMemory, owner: bool):
        self.layout, self.memory, self.owner = layout, memory, owner
        buf, at = memory.buf, 0
        self.header = np.ndarray((_HEADER,), np.float64, buf, at)
        at += 8 * _HEADER
        self.meta = np.ndarray((layout.slots, 3), np.int64, buf, at)
        at += 8 * 3 * layout.slots
        self.model = np.ndarray((layout.slots, layout.slot), np.float32, buf, at)
        at += 4 * layout.slots * layout.slot
        self.heard = np.ndarray((layout.heard,), np.float32, buf, at)

    @classmethod
    def create(cls, sample_rate: int, slot: int, seconds: float = 4.0) -> AudioRings:
        slots = int(seconds * sample_rate / slot)
        probe = RingLayout("", sample_rate, slot, slots, slots * slot)
        memory = shared_memory.SharedMemory(create=True, size=probe.nbytes)
        layout = RingLayout(memory.name, sample_rate, slot, slots, slots * slot)
        rings = cls(layout, memory, owner=True)
        rings.header[:] = 0.0
        rings.header[ANCHOR] = rings.header[INPUT_LOUD] = np.nan
        rings.meta[:, 0] = -1
        return rings

    @classmethod
    def attach(cls, layout: RingLayout) -> AudioRings:
        # Python's resource tracker would unlink a block it sees attached when this process
        # ends: only the creator may (3.13: track=False).
        try:
            memory = shared_memory.SharedMemory(layout.name, track=False)
        except TypeError:  # Python < 3.13
            memory = shared_memory.SharedMemory(layout.name)
        return cls(layout, memory, owner=False)

    def close(self) -> None:
        self.header = self.meta = self.model = self.heard = None
        self.memory.close()
        if self.owner:
            self.memory.unlink()

    # ---- the callback's side ------------------------------------------------------------------

    def write_heard(self, block: np.ndarray, start: int) -> None:
        """A block the callback put out ([frames, 2]), as mono at its absolute frame."""
        size, n = len(self.heard), len(block)
        at = start % size
        mono = block.mean(axis=1)
        first = min(n, size - at)
        self.heard[at : at + first] = mono[:first]
        if first < n:
            self.heard[: n - first] = mono[first:]
        self.header[RENDERED] = start + n

    def input_heard(self, block: np.ndarray, now: float) -> None:
        """An --audio-in block at session time `now`: loud enough, the player is sounding."""
        if float(np.sqrt(np.mean(block * block))) > INPUT_THRESHOLD:
            self.header[INPUT_LOUD] = now

    @property
    def input_loud_at(self) -> float | None:
        """The session time the audio input was last loud (None: never)."""
        value = self.header[INPUT_LOUD]
        return None if np.isnan(value) else float(value)

    def read_slot(self, frame: int, epoch: int, into: np.ndarray) -> int:
        """Copy codec frame `frame`'s slot into `into` if it holds that frame from `epoch` or
        later; returns its flags + 4, or 0 when it does not (not written yet, cut, torn)."""
        row = frame % self.layout.slots
        meta = self.meta[row]
        if meta[0] != frame or meta[1] < epoch:
            return 0
        flags = int(meta[2])
        into[:] = self.model[row]
        if meta[0] != frame:  # overwritten while copying
            return 0
        return flags + 4

    # ---- the worker's side --------------------------------------------------------------------

    def write_slot(self, frame: int, epoch: int, samples: np.ndarray, flags: int = 0) -> None:
        row = frame % self.layout.slots
        self.meta[row, 0] = -1
        self.model[row] = samples
        self.meta[row, 1] = epoch
        self.meta[row, 2] = flags
        self.meta[row, 0] = frame

    def read_heard(self, start: int, end: int) -> np.ndarray:
        """Device frames [start, end) of what was heard (a copy)."""
        size = len(self.heard)
        index = np.arange(start, end) % size
        return self.heard[index]

    @property
    def rendered(self) -> int:
        return int(self.header[RENDERED])

    def frame_of(self, t: float) -> int | None:
        """The device frame at which session time t sounds (None before the first block)."""
        anchor = self.header[ANCHOR]
        if np.isnan(anchor):
            return None
        return round((t - anchor) * self.layout.sample_rate) + int(self.header[LATENCY])
