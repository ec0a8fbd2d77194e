"""The decode worker's turn policy: when the model writes, what it may write, when its turn ends.

The engine plans turns (livegen/modes.py) in session steps; here a plan becomes tokens. The
model writes while its turn and the lookahead allow, never into the past (silence up to now,
plus the margin a note needs to be ready, is written as real silence), within the turn's rules
(models/turns.py: open with a note, room left, a note budget, not too many tokens at one step),
and the turn ends with every model note closed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, TIME_SHIFT, bin_to_velocity
from livegen.messages import ModelNote, Plan, TurnOver
from livegen.models.grammar import MODEL, PLAYER, GrammarState
from livegen.models.turns import MAX_TOKENS_PER_STEP, turn_mask
from livegen.worker_ledger import ContextLedger

if TYPE_CHECKING:
    import torch

    from livegen.models.follow import Follower, FollowSettings


ANNOUNCED_KEPT = 1024  # notes remembered for a cut to announce again (ledger.back_to_sent)


class TurnPolicy:
    """`emit(message)` announces the model's notes and the end of a turn."""

    def __init__(self, ledger: ContextLedger, params, generator, emit, lookahead_steps: int):  # noqa: ANN001
        self.ledger = ledger
        self.params = params  # models.sampling.SamplingParams
        self.generator = generator
        self.emit = emit
        self.lookahead_steps = lookahead_steps
        self.epoch = 0
        self.hold_step: int | None = None  # write nothing until the player is final up to it
        self.plan: Plan | None = None
        self.turn_started = False
        self.notes_left: int | None = None  # the turn's note budget left (None: no budget)
        self.follow: FollowSettings | None = None  # the preset's follow_* keys (build_core)
        self.follower: tuple[Follower, int] | None = None  # (follower, its step offset)
        self.announced: dict[int, ModelNote] = {}  # by number, until the engine sent it
        self.step_tokens = (-1, 0)  # (context step, model tokens written at it)
        self.tokens_made = 0

    def set_plan(self, plan: Plan | None) -> None:
        self.plan = plan
        self.turn_started = False
        self.notes_left = plan.max_notes if plan is not None else None
        self.follower = None if plan is None else self._follower()

    def set_params(self, params: Any) -> None:
        self.params = params
        if self.follower is not None:
            self.follower = self._follower()

    def withdraw(self, now_step: float) -> None:
        """The engine took the turn back (NoPlan): notes the model still holds end now, as
        the turn's end would have ended them. A cut that let them sound on (accompany mode
        cuts at every key the player strikes or lifts) left their ends to the rest of the
        turn; a turn withdrawn before the worker wrote that far had left them on until the
        engine's guard, seconds later."""
        self.set_plan(None)
        ledger = self.ledger
        if ledger.grammar.owned(MODEL):
            ledger.append(ledger.time_tokens(math.ceil(now_step) + self.margin_steps()), MODEL)
            self._close_all()

    def close_now(self, close_step: int) -> None:
        """The model yields: its turn is over, its sounding notes end at close_step (the
        engine already sent their note-offs)."""
        self.plan = None
        ledger = self.ledger
        closing = ledger.grammar.closing_tokens(MODEL)
        if closing:
            tokens = ledger.write(ledger.time_tokens(close_step), MODEL)
            tokens += ledger.write(closing, MODEL)
            ledger.decoder.append(tokens)

    # ---- when to write -----------------------------------------------------------------------

    def margin_steps(self) -> int:
        """How far past now a model note must be placed so it is ready in time: three decode
        steps (time shift, velocity, note) at the recent p90, plus 3 ms of delivery."""
        if not self.ledger.decode_ms:
            return 2
        ordered = sorted(self.ledger.decode_ms)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        return max(1, math.ceil((3 * p90 + 3.0) / 10.0))

    def held_back(self) -> bool:
        return (
            self.plan is None
            or self.hold_step is not None
            or self.ledger.tentative_start is not None
        )

    def wants_to_write(self, now_step: float) -> bool:
        if self.held_back():
            return False
        horizon = now_step + self.lookahead_steps
        end = min(self.plan.end, horizon)
        return self.plan.start <= horizon and self.ledger.session_step() < end

    def idle_timeout(self, now_step: float) -> float:
        """Seconds to wait for a message before the next token could be due."""
        if self.held_back():
            return 0.05
        ahead = max(self.ledger.session_step(), self.plan.start) - (now_step + self.lookahead_steps)
        return min(0.05, max(0.001, ahead / 100.0))

    # ---- writing -----------------------------------------------------------------------------

    def write_one(self, now_step: float) -> None:
        from livegen.models.sampling import sample_token

        ledger, plan = self.ledger, self.plan
        # Nothing the model writes may fall in the past: silence up to now (+ the margin a
        # note needs to be ready) and up to the turn's start is silence that really happens.
        earliest = max(plan.start, math.ceil(now_step) + self.margin_steps())
        if ledger.session_step() < earliest:
            ledger.append(ledger.time_tokens(min(earliest, plan.end)), MODEL)
            if ledger.session_step() >= plan.end:
                self.end_turn()
                return
        params, rules, logits = self.params, self._turn_rules(), ledger.decoder.logits()
        if self.follower is not None:
            follower, step = self.follower[0], ledger.grammar.step - self.follower[1]
            params, rules = follower.params(step), follower.restrict(rules, step, ledger.grammar)
            bias = follower.bias  # the key and register steers' sum: read once
            if bias is not None:
                logits = logits + bias.to(logits.device, logits.dtype)
        token = sample_token(logits, params, ledger.grammar, self.generator, rules)
        ledger.append([token], MODEL)
        if self.follower is not None:
            self.follower[0].observe(token, ledger.grammar.step - self.follower[1])
        step, count = self.step_tokens
        now = ledger.grammar.step
        self.step_tokens = (now, count + 1 if step == now else 1)
        self.tokens_made += 1
        if NOTE_ON <= token < TIME_SHIFT:
            self.turn_started = True
            self._announce(token < NOTE_OFF, token % 128, ledger.position - 1)
            if token < NOTE_OFF and self.notes_left is not None:
                self.notes_left -= 1
        spent = self.notes_left is not None and self.notes_left <= 0
        if ledger.session_step() >= plan.end or (spent and not ledger.grammar.owned(MODEL)):
            self.end_turn()

    def _turn_rules(self) -> torch.Tensor | None:
        """What the turn allows next (models/turns.py's rules, from the worker's state)."""
        grammar = self.ledger.grammar
        crowded = self.step_tokens[1] >= MAX_TOKENS_PER_STEP and self.step_tokens[0] == grammar.step
        return turn_mask(
            opening=self.plan.first_note and not self.turn_started,
            room_steps=self.plan.end - self.ledger.session_step(),
            crowded=crowded,
            notes_left=self.notes_left,
        )

    def _follower(self) -> tuple[Follower, int] | None:
        """Controls that follow what the player played in the context the worker remembers
        (models/follow.py): the player's notes, on the context's time line."""
        if self.follow is None or not self.follow.active:
            return None
        import torch

        from livegen.models.follow import Follower

        tokens = self.ledger.player_tokens()
        shown = GrammarState()
        shown.extend(tokens, PLAYER)
        offset = self.ledger.grammar.step - shown.step  # context step of the tokens' time 0
        # A rhythm plan draws from its own generator; seeded from the turn's, so each turn
        # draws anew and a seeded session repeats.
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        return Follower(tokens, shown.step, self.params, self.follow, seed), offset

    def _announce(self, on: bool, pitch: int, position: int) -> None:
        ledger = self.ledger
        velocity_bin = ledger.grammar.velocity_bin
        velocity = bin_to_velocity(velocity_bin) if velocity_bin else 64
        number = ledger.number_note(position)
        note = ModelNote(self.epoch, number, ledger.session_step(), on, pitch, velocity)
        self.announced[number] = note
        if len(self.announced) > ANNOUNCED_KEPT:  # long sent: the engine plays within lookahead
            self.announced = {
                n: m for n, m in self.announced.items() if n > number - ANNOUNCED_KEPT // 2
            }
        self.emit(note)

    def announce_again(self, last_sent: int, numbers: list[int]) -> None:
        """A cut (under the new epoch): the notes the engine dropped that the context keeps
        (ledger.back_to_sent) go out again; the engine has sent every note up to last_sent,
        so those are forgotten."""
        self.announced = {n: m for n, m in self.announced.items() if n > last_sent}
        for number in numbers:
            note = self.announced.get(number)
            if note is not None:
                self.emit(dataclasses.replace(note, epoch=self.epoch))

    def end_turn(self) -> None:
        self._close_all()
        self.emit(TurnOver(self.epoch, self.ledger.session_step()))
        self.plan = None

    def _close_all(self) -> None:
        """Every model note still sounding ends here, written and announced."""
        ledger = self.ledger
        closing = ledger.grammar.closing_tokens(MODEL)
        first = ledger.position
        ledger.append(closing, MODEL)
        for index, token in enumerate(closing):
            self._announce(False, token - NOTE_OFF, first + index)
