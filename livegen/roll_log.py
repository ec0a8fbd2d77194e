"""What the piano roll shows: the notes of the last minutes, the player's and the model's.

The conductor writes (`on`, `off`); the UI reads (`since`) from another thread. Reads copy
what they iterate, so a note that starts or ends meanwhile is seen before or after, never torn.
"""

from __future__ import annotations

from collections import deque

from livegen.controls import RollNote

KEEP = 4096  # closed notes kept: minutes of dense playing, more than a roll shows


class RollLog:
    def __init__(self) -> None:
        self._closed: deque[RollNote] = deque(maxlen=KEEP)  # in the order they ended
        # (owner, channel, pitch) -> [(start, velocity)] for each strike still sounding
        self._open: dict[tuple[str, int, int], list[tuple[float, int]]] = {}

    def on(self, owner: str, channel: int, pitch: int, velocity: int, t: float) -> None:
        self._open.setdefault((owner, channel, pitch), []).append((t, velocity))

    def off(self, owner: str, channel: int, pitch: int, t: float) -> None:
        """End the oldest sounding strike of this key (none sounding: nothing to end)."""
        starts = self._open.get((owner, channel, pitch))
        if not starts:
            return
        start, velocity = starts.pop(0)
        if not starts:
            del self._open[(owner, channel, pitch)]
        self._closed.append(RollNote(owner, pitch, velocity, start, max(t, start)))

    def since(self, since: float) -> list[RollNote]:
        """Notes overlapping [since, now], by start; the sounding ones end None."""
        notes = []
        for note in reversed(list(self._closed)):
            if note.end < since:
                break
            notes.append(note)
        for (owner, _, pitch), starts in list(self._open.items()):
            notes.extend(RollNote(owner, pitch, v, s) for s, v in list(starts))
        notes.sort(key=lambda n: n.start)
        return notes
