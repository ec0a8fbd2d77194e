"""What the model hears of the player, and when it plays: the conductor's side of the turns.

Each key change the model hears (player_input.PlayerKeys) goes to the live encoder (the
player's events for the worker: final ones and the current step's preview), to the mode's
planner (modes.TurnPlanner), which may make the model yield or rethink its future (a cut), and
the turn it plans goes to the worker as a Plan. Messages to the worker keep their order: the
player's events, merged while the conductor's loop runs, go before any later message.
"""

from __future__ import annotations

from collections.abc import Callable

from livegen.controls import Controls
from livegen.fanout import NoteFanout
from livegen.kernels.time_steps import seconds_to_step
from livegen.messages import CancelAfter, Cut, NoPlan, Plan, PlayerEvents
from livegen.model_output import ModelOutput
from livegen.modes import Turn, TurnPlanner
from livegen.player_input import ControllerMoved, KeyChange, KeyDown, KeyUp, PedalMoved
from livegen.player_stream import PlayerStream
from livegen.session_clock import SessionClock


class TurnTaking:
    def __init__(
        self,
        controls: Callable[[], Controls],
        clock: SessionClock,
        output: ModelOutput,
        fanout: NoteFanout,
        send: Callable[[object], None],
        say: Callable[[str], None],
        t0: float,
    ) -> None:
        """`send(message)`: to the decode worker (never blocks)."""
        self._controls, self.clock, self.output, self.fanout = controls, clock, output, fanout
        self._send, self._say, self.t0 = send, say, t0
        self.stream = PlayerStream()
        self.planner = TurnPlanner()
        self.sent_turn: Turn | None = None
        self.hold_step: int | None = None  # the worker waits until the player is final here
        self._pending: PlayerEvents | None = None

    @property
    def busy(self) -> bool:
        """Steps are waiting to become final: tick every step."""
        return self.stream.busy or self.hold_step is not None

    def hear(self, change: KeyChange) -> None:
        controls = self._controls()
        match change:
            case KeyDown(channel, pitch, velocity, t, held):
                action = self.planner.note_on(t, controls, held)
                if action is not None:
                    self.cut(close=action == "yield", hold=True, t=t)
                events = self.stream.note_on(channel, pitch, velocity, t, t + self.t0)
                self._player(events, self.stream.preview(t))
                self.replan(t)
            case KeyUp(channel, pitch, t, held):
                if self.planner.note_off(t, controls, held) is not None:
                    self.cut(close=False, hold=True, t=t)
                self._player(self.stream.note_off(channel, pitch, t), [])
                self.replan(t)
            case PedalMoved(channel, value, t):
                self._player(self.stream.pedal(channel, value, t), [])
            case ControllerMoved(_, number, value, t):
                if self.planner.controller(t, number, value, controls):
                    self._say(f"phrase end (controller {number})")
                    self.replan(t)

    def sound(self, sounding: bool, t: float) -> None:
        """--audio-in: the player's sound began (as a key goes down) or ended (as the last
        key comes up): the same turns, phrase ends by silence."""
        controls = self._controls()
        if sounding:
            action = self.planner.note_on(t, controls, 1)
            if action is not None:
                self.cut(close=action == "yield", hold=False, t=t)
        else:
            self.planner.note_off(t, controls, 0)
        self.replan(t)

    def tick(self, now: float) -> None:
        """The live encoder's steps become final as time passes."""
        if self.busy:
            self._player(self.stream.advance(now), [])

    def _player(self, events: list, tentative: list) -> None:
        final = self.stream.final_step
        if events or tentative or self.hold_step is not None:
            # Merged until the conductor's loop ends: a flood becomes one message a loop (one
            # prefill, not hundreds of small ones).
            message = PlayerEvents(tuple(events), final, tuple(tentative))
            pending = self._pending
            self._pending = message if pending is None else pending.then(message)
            if self.hold_step is not None and final >= self.hold_step:
                self.hold_step = None

    def tell(self, message: object) -> None:
        """A message for the worker, after any player events still waiting (order matters)."""
        self.flush()
        self._send(message)

    def flush(self) -> None:
        if self._pending is not None:
            message, self._pending = self._pending, None
            self._send(message)

    # ---- cuts and turns ----------------------------------------------------------------------

    def cut(self, close: bool, hold: bool, t: float) -> None:
        """Drop the model's unsent notes; close its sounding notes if it must yield."""
        epoch, last_sent = self.output.cut()
        self.fanout.synth(CancelAfter(t, epoch))
        if close:
            self.output.silence(t)
        step = seconds_to_step(t)
        if hold:
            self.hold_step = step
        self.tell(Cut(epoch, last_sent, step if close else None, step if hold else None))
        if close:
            self.output.awaiting = None

    def replan(self, now: float) -> None:
        turn = self.planner.plan(now, self._controls(), self.clock.beat_clock(now))
        if turn == self.sent_turn:
            return
        previous, self.sent_turn = self.sent_turn, turn
        if turn is None:
            self.tell(NoPlan())
            self.output.awaiting = None
            return
        start, end = seconds_to_step(turn.start), seconds_to_step(turn.end)
        self.tell(Plan(start, end, turn.first_note, turn.max_notes))
        if previous is None or previous.start != turn.start:
            self.output.awaiting = (turn.decided, turn.end)

    def turn_over(self, epoch: int, now: float) -> None:
        """The worker ended the model's turn (ignored if a cut came since)."""
        if epoch == self.output.scheduler.epoch:
            self.planner.turn_over()
            self.replan(now)

    def forget(self, t: float) -> None:
        """Panic: the model's notes end, it forgets its plans (not what it heard)."""
        self.cut(close=True, hold=False, t=t)
        self.planner.reset()
        self.sent_turn = None
        self.tell(NoPlan())

    def speaking(self, now: float) -> bool:
        turn = self.sent_turn
        return bool(self.output.sounding) or (turn is not None and turn.start <= now < turn.end)
