"""The decode worker's ledger of its context: what each position holds, and how to go back.

One token stream, two authors: the context interleaves the player's tokens (the engine's
LiveEncoder events) and the model's own, in time order. Time in the context is the sum of its
TIME_SHIFTs (the "context step", GrammarState.step); session step = context step + `offset`,
where `offset` grows when a long silence is cut down to MAX_GAP_STEPS (a minute of nobody
playing should not fill the context with TIME_SHIFTs).

The ledger keeps, per position, (token, owner, offset after it), grammar snapshots to roll back
from, where the player's last final token ends, the player's previewed (not yet final) tokens,
and which position each model note the worker announced sits at (a Cut names the last note the
engine sent by its number; the engine never sees a context position).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from livegen.kernels.errors import LivegenError
from livegen.kernels.time_steps import time_shift_tokens
from livegen.kernels.vocab import BEGIN, NOTE_OFF, NOTE_ON, TIME_SHIFT, VELOCITY
from livegen.messages import ContextDump, PlayerEvent
from livegen.models.grammar import PLAYER, GrammarState

MAX_GAP_STEPS = 300  # silences longer than 3 s are shortened to 3 s in the context
SNAPSHOT_EVERY = 32  # positions between grammar snapshots (rollback replays from the nearest)


class LedgerError(LivegenError):
    """The context cannot go back that far (no grammar snapshot)."""


class ContextLedger:
    def __init__(self, decoder) -> None:  # noqa: ANN001 - a models.streaming decoder
        self.decoder = decoder
        self.grammar = GrammarState()
        self.offset = 0  # session step = context step + offset
        # Per position (index = position - self.base): (token, owner, offset after it).
        self.meta: deque[tuple[int, int, int]] = deque()
        self.base = 1  # position of meta[0] (position 0 is BEGIN)
        self.snapshots: dict[int, tuple[Any, int]] = {}  # position -> (grammar, offset)
        self.player_end = 1  # position just after the player's last final token
        self.tentative_start: int | None = None  # where not-yet-final player tokens begin
        self.tentative_events: tuple[PlayerEvent, ...] = ()  # the preview they came from
        self.notes_made = 0  # model notes announced (their numbers: 1, 2, ...)
        self.note_positions: dict[int, int] = {}  # note number -> its token's position
        self.decode_ms: deque[float] = deque(maxlen=256)  # one-token appends
        decoder.reset()
        decoder.append([BEGIN])
        self.snapshot()

    @property
    def position(self) -> int:
        return self.decoder.position

    def session_step(self) -> int:
        return self.grammar.step + self.offset

    # ---- writing -----------------------------------------------------------------------------

    def snapshot(self) -> None:
        """Remember grammar and offset here (rollback replays tokens from the nearest one)."""
        self.snapshots[self.position] = (self.grammar.snapshot(), self.offset)
        stale = [p for p in self.snapshots if p < self.base - 1]
        if len(self.snapshots) > 128:  # many player batches: keep the regular ones and the last
            stale += [p for p in sorted(self.snapshots)[:-16] if p % SNAPSHOT_EVERY]
        for pos in stale:
            self.snapshots.pop(pos, None)
        if len(self.note_positions) > 4 * self.decoder.history_size:
            self.note_positions = {
                n: p for n, p in self.note_positions.items() if p >= self.base - 1
            }

    def write(self, tokens: list[int], owner: int) -> list[int]:
        """Account tokens (grammar, meta); the caller appends them to the decoder."""
        for token in tokens:
            self.grammar.update(token, owner)
            self.meta.append((token, owner, self.offset))
        while len(self.meta) > self.decoder.history_size:
            self.meta.popleft()
            self.base += 1
        return tokens

    def append(self, tokens: list[int], owner: int) -> None:
        """Write tokens and append them to the decoder (a one-token append is timed)."""
        if not tokens:
            return
        self.write(tokens, owner)
        t0 = time.perf_counter()
        self.decoder.append(tokens)
        if len(tokens) == 1:
            self.decode_ms.append((time.perf_counter() - t0) * 1e3)
        if self.position % SNAPSHOT_EVERY == 0:
            self.snapshot()

    def time_tokens(self, target_session_step: int) -> list[int]:
        """TIME_SHIFTs that take the context to a session step (long gaps shortened)."""
        gap = int(target_session_step) - self.session_step()
        if gap > MAX_GAP_STEPS:
            self.offset += gap - MAX_GAP_STEPS
            gap = MAX_GAP_STEPS
        return time_shift_tokens(gap)

    def event_tokens(self, events: tuple[PlayerEvent, ...], owner: int) -> list[int]:
        """Tokens of timed events, written into grammar/meta as they are made."""
        tokens: list[int] = []
        for event in events:
            tokens += self.write(self.time_tokens(event.step), owner)
            if event.on:
                if event.velocity_bin != self.grammar.velocity_bin:
                    tokens += self.write([VELOCITY + event.velocity_bin - 1], owner)
                tokens += self.write([NOTE_ON + event.pitch], owner)
            else:
                tokens += self.write([NOTE_OFF + event.pitch], owner)
        return tokens

    def number_note(self, position: int) -> int:
        """A number for the model note whose token sits at `position`."""
        self.notes_made += 1
        self.note_positions[self.notes_made] = position
        return self.notes_made

    # ---- the player's tokens -----------------------------------------------------------------

    def take_player(self, events: tuple[PlayerEvent, ...], tentative: tuple[PlayerEvent, ...]):  # noqa: ANN201
        """Final player events, then the current step's preview. A standing preview that came
        out as final exactly as previewed (the usual case) stays as it is: no rollback, no
        second prefill."""
        if self.tentative_start is not None:
            previewed = self.tentative_events
            done = events[: len(previewed)]
            if previewed and len(done) == len(previewed):
                if all(a.same_note(b) for a, b in zip(done, previewed, strict=True)):
                    events = events[len(previewed) :]
                else:
                    self.rollback(self.tentative_start)
            else:
                self.rollback(self.tentative_start)
            self.tentative_start = None
        # Model tokens after the player's last one stand: the engine cuts (rolls them back)
        # before every player event while the model is writing.
        tokens = self.event_tokens(events, PLAYER)
        if tokens:
            self.decoder.append(tokens)
        self.player_end = self.position
        self.snapshot()
        if tentative:
            self.tentative_start = self.position
            self.tentative_events = tentative
            more = self.event_tokens(tentative, PLAYER)
            if more:
                self.decoder.append(more)

    # ---- going back --------------------------------------------------------------------------

    def rollback(self, position: int) -> None:
        """Back to `position` (tokens from there on dropped), grammar and offset included."""
        position = max(position, 1)
        if position >= self.position:
            return
        best = max((p for p in self.snapshots if p <= position), default=None)
        if best is None or best < self.base - 1:
            raise LedgerError(f"cannot roll back to {position}: no grammar snapshot")
        grammar, offset = self.snapshots[best]
        grammar = grammar.snapshot()
        for index in range(best - self.base, position - self.base):
            token, owner, offset = self.meta[index]
            grammar.update(token, owner)
        self.grammar, self.offset = grammar, offset
        for _ in range(self.position - position):
            self.meta.pop()
        for pos in [p for p in self.snapshots if p > position]:
            del self.snapshots[pos]
        self.decoder.rollback(position)

    def back_to_sent(self, last_sent: int) -> list[int]:
        """A cut: drop the preview (the next player message brings it again) and every model
        token after the last note the engine sent (never the player's). Returns the notes the
        engine had not sent that stay all the same, before the player's last token: the
        engine dropped them, so they must be announced again."""
        if self.tentative_start is not None:
            self.rollback(self.tentative_start)
            self.tentative_start = None
        kept = self.note_positions.get(last_sent, 0 if not last_sent else self.base - 1)
        end = max(kept + 1, self.player_end)
        self.rollback(end)
        self.note_positions = {
            n: p for n, p in self.note_positions.items() if n <= last_sent or p < end
        }
        return sorted(n for n in self.note_positions if n > last_sent)

    # ---- handing over to another model ----------------------------------------------------

    def dump(self, final_step: int) -> ContextDump:
        """The final context (a preview is dropped: the player's next message brings it)."""
        if self.tentative_start is not None:
            self.rollback(self.tentative_start)
            self.tentative_start = None
        tokens = tuple(t for t, _, _ in self.meta)
        owners = tuple(o for _, o, _ in self.meta)
        return ContextDump(tokens, owners, self.session_step(), final_step)

    def prime(self, dump: ContextDump) -> None:
        """Start from another model's context: as much of its end as this model's context
        holds, from a time shift on (not in the middle of a note's tokens), on the same
        session time line."""
        start = max(0, len(dump.tokens) - (self.decoder.N - 1))
        while start < len(dump.tokens) and not TIME_SHIFT <= dump.tokens[start] < VELOCITY:
            start += 1
        tokens: list[int] = []
        for token, owner in zip(dump.tokens[start:], dump.owners[start:], strict=True):
            tokens += self.write([token], owner)
        if tokens:
            self.decoder.append(tokens)
        self.offset = dump.session_step - self.grammar.step
        self.player_end = self.position
        self.snapshot()

    def player_tokens(self) -> list[int]:
        """The player's tokens and all time shifts the ledger remembers (models/follow.py)."""
        return [t for t, owner, _ in self.meta if owner == PLAYER or TIME_SHIFT <= t < VELOCITY]
