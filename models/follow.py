"""Follow the player: sampling controls set from what was just played, not fixed per preset.

A model trained on deadpan scores plays at its own pace, thickness and register whatever it
continues. These controls take them from the prompt's last `window_seconds` (what the player
just played) instead, so a sparse phrase gets a sparse continuation:

- register: notes only within the prompt's pitch range, widened by `register_margin`;
- polyphony: at most the prompt's 90th-percentile count of sounding notes;
- note length: at most 1.5x the prompt's 90th-percentile note length;
- density: a NOTE_ON bias (the `density` control) steered every step so the model's onsets
  over the last few seconds track the prompt's rate: log2 of the shortfall times
  `density_gain` nats, within +-DENSITY_LIMIT;
- key: note-ons only in the pitch classes the prompt used (a scale lock), when it used at
  least MIN_KEY_CLASSES of them (fewer says too little about the key); the key controls read
  the prompt's last `long_window_seconds`, longer than the `window_seconds` of the others;
- key bias (soft, KeySteer): a NOTE_ON bias per pitch class steered so the model's own
  pitch-class histogram tracks the prompt's: `key_bias` times the log of the class's share in
  the prompt over its share in what the model played (both smoothed), within
  +-DENSITY_LIMIT; no class is ruled out (the hard scale lock above is `key`);
- key quota (`key_quota`): where one of the prompt's pitch classes falls behind its share
  of the model's notes by the slack (half a note, growing with the notes the model played to
  QUOTA_SLACK), only such classes may be played, and given
  MIN_KEY_CLASSES of them, never one the prompt did not play (the prompt's own shares, dealt
  as the rhythm plan deals the player's onsets: the steer corrects a share after it drifts,
  so 150 notes still drew a histogram off the prompt's by chance; BENCHMARKS.md, issue 18);
  only where the rhythm plan below places the onsets, as it says when a note comes and the
  quota only which class; which pitch of a class stays the model's choice;
- register steer (RegisterSteer): a NOTE_ON tilt that favours lower pitches while the
  model's notes have sat above the player's mean pitch (the prompt's last `window_seconds`)
  and higher ones while they sat below: each model note adds `register_steer` times its
  distance from that mean, in octaves, to the tilt (nats per octave), so the model's mean
  pitch comes back to the player's however strongly it prefers a register of its own (the
  range above only bounds it: the model played ~2 semitones above the player within it,
  BENCHMARKS.md, issue 18);
- rhythm draw (RhythmPlan, models/rhythm_plan.py): the model's onsets are the prompt's,
  dealt with their intervals, chord sizes and note lengths (`rhythm_draw`), in the player's
  own order or shuffled (`rhythm_shuffle`); an onset that would close a second of the
  player's own rhythm is dealt another of their onsets, else is left out or one is put in,
  with probability `rhythm_variation` (new against all the prompt's last
  `long_window_seconds`); the polyphony cap and the note-length guard make room
  for the player's texture; where it is on, it places the onsets and the pulse rule below
  does not;
- rhythm: the model's onsets on the prompt's own pulse (models/pulse.py: the coarsest grid
  its onsets sit on, divided into `rhythm` parts unless it is FINE_PULSE_STEPS or finer
  already): a time shift may land only on a grid point, and a note may start only
  on one. Where the grid is out of the shifts' reach (a note must end first), time walks
  towards it; where the prompt has no steady grid, time stays free.

Used by the shared generation core (models/continuation.py), so `livegen continue`, the
call-mode answers and eval-continuations all follow the same way.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from livegen.kernels.time_steps import (
    STEP_SECONDS,
    seconds_to_step,
    seconds_to_steps,
    step_to_seconds,
)
from livegen.kernels.tokenizer import Notes, decode_tokens
from livegen.kernels.vocab import (
    MAX_SHIFT_STEPS,
    NOTE_OFF,
    NOTE_ON,
    TIME_SHIFT,
    VELOCITY,
    VOCAB_SIZE,
)
from livegen.models.grammar import GrammarState
from livegen.models.pulse import Pulse, estimate_pulse
from livegen.models.rhythm_plan import RhythmPlan, has_rhythm
from livegen.models.sampling import SamplingParams

DENSITY_LIMIT = 6.0  # nats either way
MIN_KEY_CLASSES = 5
# A pulse this fine (160 ms: sixteenths at 94 bpm) already leaves the model rhythms enough to
# be its own; dividing it only adds intervals the player never played (BENCHMARKS.md, issue
# 18 stop 24). A coarser one (an eighth, a beat) is divided into `rhythm` parts: on it alone,
# the model can only repeat the player's patterns.
FINE_PULSE_STEPS = 16.0
MIN_KEY_NOTES = 8  # the soft key bias needs this many of the prompt's notes
KEY_SMOOTHING = 0.5  # notes added to every pitch class of the prompt's histogram
KEY_PRIOR_NOTES = 8  # the model starts as if it had played this many notes in the prompt's key
# A pitch class over its quota: ruled out in practice, yet finite, so that where the other
# controls leave only such note-ons (a chord the plan holds open, a register) one is played.
QUOTA_NATS = 30.0
# How far behind its share a class may fall before the others are ruled out: half a note at
# first, then a note for every SLACK_NOTES the model has played, up to QUOTA_SLACK. At half a
# note throughout, the quota chose every other note's class, and the model's top line and the
# intervals of its chords came out hardly better than an even choice's; two notes from the
# start gave them back, but a call-mode answer of nine notes then drifted off the phrase's
# key (BENCHMARKS.md, issue 18 stop 31).
QUOTA_SLACK = 2.0
SLACK_NOTES = 15.0
RATE_WINDOW_STEPS = 300  # the model's recent rate: onsets over the last 3 s
PITCH_CLASS = np.arange(128) % 12  # each MIDI pitch's class
POLYPHONY_ROOM = 2  # under a plan: the cap is this many times the player's peak sounding notes


@dataclass(frozen=True)
class FollowSettings:
    density_gain: float = 0.0  # nats per octave of rate shortfall; 0: off
    polyphony: bool = False
    note_length: bool = False
    register_margin: int = -1  # semitones around the prompt's range; < 0: off
    key: bool = False
    key_bias: float = 0.0  # nats per e-fold of a pitch class's shortfall; 0: off
    key_quota: bool = False  # each pitch class at most its share of the model's notes
    register_steer: float = 0.0  # nats per octave of tilt per octave a note is off; 0: off
    rhythm: int = 0  # onsets on the prompt's grid divided into this many parts (0: off)
    rhythm_draw: bool = False  # onsets, chords and lengths drawn from the prompt's
    rhythm_variation: float = 0.0  # chance a repeat of the player's second is varied
    rhythm_shuffle: bool = True  # their onsets dealt in new orders (False: in their own)
    # What "just played" means: 7.5 s measured closer than 8 (BENCHMARKS.md, issue 18 stop 28:
    # songs 0.228 -> 0.217, games 0.237 -> 0.232); it is also the span the loop floor copies.
    window_seconds: float = 7.5
    # The key and the player's rhythms are longer-lived than the texture: the whole 15 s
    # prompt's pitch classes are closer to what the music plays next than its last 7.5 s, and a
    # rhythm from 10 s ago is no new one (BENCHMARKS.md, issue 18 stop 28).
    long_window_seconds: float = 15.0

    @classmethod
    def from_defaults(cls, defaults: object) -> FollowSettings:
        """From a preset's [sampling] table (its follow_* keys; absent ones: off)."""
        return cls(
            density_gain=float(getattr(defaults, "follow_density", 0.0)),
            polyphony=bool(getattr(defaults, "follow_polyphony", False)),
            note_length=bool(getattr(defaults, "follow_note_length", False)),
            register_margin=int(getattr(defaults, "follow_register", -1)),
            key=bool(getattr(defaults, "follow_key", False)),
            key_bias=float(getattr(defaults, "follow_key_bias", 0.0)),
            key_quota=bool(getattr(defaults, "follow_key_quota", False)),
            register_steer=float(getattr(defaults, "follow_register_steer", 0.0)),
            rhythm=int(getattr(defaults, "follow_rhythm", 0)),
            rhythm_draw=bool(getattr(defaults, "follow_rhythm_draw", False)),
            rhythm_variation=float(getattr(defaults, "follow_rhythm_variation", 0.0)),
            rhythm_shuffle=bool(getattr(defaults, "follow_rhythm_shuffle", True)),
        )

    @property
    def active(self) -> bool:
        return bool(
            self.density_gain
            or self.polyphony
            or self.note_length
            or self.register_margin >= 0
            or self.key
            or self.key_bias
            or self.key_quota
            or self.register_steer
            or self.rhythm > 0
            or self.rhythm_draw
        )


def _sounding_counts(notes: Notes, start: float, stop: float) -> np.ndarray:
    """Sounding notes at each 10 ms step of [start, stop) where any sound."""
    steps = np.arange(seconds_to_step(start), seconds_to_step(stop))
    times = steps * STEP_SECONDS
    counts = ((notes.start[:, None] <= times) & (notes.end[:, None] > times)).sum(0)
    return counts[counts > 0]


class Follower:
    """Per-step sampling controls for a continuation of `prompt` (tokens, ending at
    `prompt_step`), starting from `base`."""

    def __init__(
        self,
        prompt: list[int],
        prompt_step: int,
        base: SamplingParams,
        settings: FollowSettings,
        seed: int = 0,
    ) -> None:
        self.settings = settings
        self.start_step = prompt_step
        end = step_to_seconds(prompt_step)
        begin = max(0.0, end - settings.window_seconds)
        notes = decode_tokens(prompt)
        recent = notes.take(np.flatnonzero(notes.start >= begin))
        self.target_rate = len(recent) / max(end - begin, STEP_SECONDS)
        self.base = base.replace(**self._static(recent, notes, begin, end, base))
        self.onsets: deque[int] = deque()
        remembered = notes.take(np.flatnonzero(notes.start >= end - settings.long_window_seconds))
        self.mask = self._key_mask(remembered) if settings.key else None
        starts = seconds_to_steps(recent.start)
        beat = None
        if settings.rhythm > 0 or settings.rhythm_draw:
            beat = estimate_pulse(starts)
        self.plan: RhythmPlan | None = None  # places the onsets where it is on
        if settings.rhythm_draw and has_rhythm(starts):
            self.plan = RhythmPlan(
                starts,
                seconds_to_steps(recent.end) - starts,
                seconds_to_step(float(notes.start.max())),
                beat,
                seed,
                settings.rhythm_variation,
                seconds_to_steps(remembered.start),
                settings.rhythm_shuffle,
            )
        if self.plan is not None:
            self.base = self.base.replace(**self._room_for_the_plan(recent, begin, end, base))
        self.key_steer: KeySteer | None = None
        if (settings.key_bias or settings.key_quota) and len(remembered) >= MIN_KEY_NOTES:
            # The quota only where the plan says when a note comes: elsewhere a class ruled
            # out is not made up by another, the model waits instead (a call-mode answer of 7
            # notes to a phrase of 12 without a plan; BENCHMARKS.md, issue 18).
            quota = settings.key_quota and self.plan is not None
            self.key_steer = KeySteer(remembered.pitch, settings.key_bias, quota)
        self.register_steer: RegisterSteer | None = None
        if settings.register_steer and len(recent):
            target = float(recent.pitch.mean())
            self.register_steer = RegisterSteer(target, settings.register_steer)
        self._bias = self._summed_bias()
        self.pulse: Pulse | None = None  # the grid the model's onsets keep to, without a plan
        if self.plan is None and settings.rhythm > 0 and beat is not None:
            fine = beat.period <= FINE_PULSE_STEPS
            self.pulse = beat.subdivided(1 if fine else settings.rhythm)

    def _room_for_the_plan(
        self, recent: Notes, begin: float, end: float, base: SamplingParams
    ) -> dict[str, float | int]:
        """The plan plays the player's chords and note lengths, so the caps make room for
        their texture: a polyphony cap below it stalled the plan's onsets until notes ended,
        and the note-length guard (the player's 90th percentile) cut their long notes short,
        thinning the texture (BENCHMARKS.md, issue 18). The preset's longest note still holds."""
        changes: dict[str, float | int] = {}
        peak = _sounding_counts(recent, begin, end)
        if peak.size:
            room = POLYPHONY_ROOM * int(peak.max())
            changes["max_polyphony"] = max(self.base.max_polyphony, room)
        longest = float((recent.end - recent.start).max())
        changes["max_note_seconds"] = float(np.clip(longest, 0.1, base.max_note_seconds))
        return changes

    @staticmethod
    def _key_mask(recent: Notes) -> torch.Tensor | None:
        """Bool [V]: every token but the note-ons outside the prompt's pitch classes (None:
        too few pitch classes to tell a key)."""
        classes = np.unique(recent.pitch % 12)
        if classes.size < MIN_KEY_CLASSES:
            return None
        allowed = torch.ones(VOCAB_SIZE, dtype=torch.bool)
        outside = np.setdiff1d(np.arange(12), classes)
        allowed[NOTE_ON + np.flatnonzero(np.isin(PITCH_CLASS, outside))] = False
        return allowed

    @property
    def bias(self) -> torch.Tensor | None:
        """Float [V]: nats to add to the logits now, the key and register steers' (None:
        neither is on). Read for every token; summed only when a note changes a steer."""
        return self._bias

    def _summed_bias(self) -> torch.Tensor | None:
        """The steers' biases added (one steer: its own tensor, no copy; none: None)."""
        biases = [s.bias for s in (self.key_steer, self.register_steer) if s is not None]
        return sum(biases[1:], biases[0]) if biases else None

    def restrict(
        self, rules: torch.Tensor | None, step: int | None = None, state: GrammarState | None = None
    ) -> torch.Tensor | None:
        """The caller's own rules (a turn's; None: none) with the key lock and the rhythm
        (for the token at context step `step`, the grammar in `state`) ANDed in."""
        masks = [rules, self.mask, self._rhythm(rules, step, state), self._plan(rules, step)]
        masks = [m for m in masks if m is not None]
        if not masks:
            return None
        out = masks[0]
        for mask in masks[1:]:
            out = out & mask
        return out

    def _plan(self, rules: torch.Tensor | None, step: int | None) -> torch.Tensor | None:
        """The rhythm plan's mask; None where there is none, or where the turn wants a note
        at once (the plan takes the turn's first onset as its own and goes on from it)."""
        if self.plan is None or step is None:
            return None
        if rules is not None and not rules[TIME_SHIFT:VELOCITY].any():
            return None
        return self.plan.mask(step)

    def _rhythm(
        self, rules: torch.Tensor | None, step: int | None, state: GrammarState | None
    ) -> torch.Tensor | None:
        """Bool [V]: time shifts that land on the pulse's grid (or, where the next grid point
        is beyond reach, that fall short of it) and note-ons only on a grid point; None where
        there is no pulse or the turn wants a note at once."""
        if self.pulse is None or step is None or state is None:
            return None
        room = min(MAX_SHIFT_STEPS, state.steps_left(self.base.max_note_steps))
        if rules is not None:
            shifts = np.flatnonzero(rules[TIME_SHIFT:VELOCITY].cpu().numpy())
            if not shifts.size:  # the turn opens with a note: no walking to the grid
                return None
            room = min(room, int(shifts[-1]) + 1)
        lands = self.pulse.landings(step, MAX_SHIFT_STEPS)
        next_point = int(np.flatnonzero(lands)[0]) + 1  # MAX_PERIOD <= MAX_SHIFT_STEPS
        if next_point > room:  # a note ends first: walk towards the grid, short of its point
            lands[: next_point - 1] = True
        mask = torch.ones(VOCAB_SIZE, dtype=torch.bool)
        mask[TIME_SHIFT:VELOCITY] = torch.from_numpy(lands)
        if not self.pulse.on_grid(np.array([step]))[0]:
            mask[NOTE_ON:NOTE_OFF] = False
        return mask

    def _static(self, recent: Notes, notes: Notes, begin: float, end: float, base) -> dict:  # noqa: ANN001
        s, changes = self.settings, {}
        if not len(recent):
            return changes
        if s.register_margin >= 0:
            low = max(base.low_pitch, int(recent.pitch.min()) - s.register_margin)
            high = min(base.high_pitch, int(recent.pitch.max()) + s.register_margin)
            if low <= high:
                changes.update(low_pitch=low, high_pitch=high)
        if s.polyphony:
            counts = _sounding_counts(notes, begin, end)
            if counts.size:
                cap = math.ceil(np.percentile(counts, 90))
                changes["max_polyphony"] = max(1, min(base.max_polyphony, cap))
        if s.note_length:
            lengths = np.percentile(recent.end - recent.start, 90) * 1.5
            changes["max_note_seconds"] = float(np.clip(lengths, 0.1, base.max_note_seconds))
        return changes

    def observe(self, token: int, step: int) -> None:
        """The model wrote `token` at context step `step`."""
        if self.plan is not None:
            self.plan.observe(token, step)
        if NOTE_ON <= token < NOTE_OFF:
            self.onsets.append(step)
            if self.key_steer is not None:
                self.key_steer.observe(token - NOTE_ON)
            if self.register_steer is not None:
                self.register_steer.observe(token - NOTE_ON)
            self._bias = self._summed_bias()

    def params(self, step: int) -> SamplingParams:
        """The controls for the token written at context step `step`."""
        gain = self.settings.density_gain
        if not gain:
            return self.base
        while self.onsets and self.onsets[0] <= step - RATE_WINDOW_STEPS:
            self.onsets.popleft()
        span = min(max(step - self.start_step, 0), RATE_WINDOW_STEPS) + 50  # +0.5 s: no 0/0
        expected = self.target_rate * step_to_seconds(span)
        bias = gain * math.log2((expected + 1) / (len(self.onsets) + 1))
        bias = max(-DENSITY_LIMIT, min(DENSITY_LIMIT, self.base.density + bias))
        return self.base.replace(density=bias)


class KeySteer:
    """A NOTE_ON bias per pitch class that steers the model's pitch-class histogram towards
    the prompt's (a fixed bias by the prompt's histogram would multiply the model's own
    preference, sharpening the key it already favours rather than matching the prompt's).
    With `quota`, where a class of the prompt's falls behind its share of the model's
    notes, the others are ruled out (QUOTA_NATS) until it catches up; see over_quota."""

    def __init__(self, pitches: np.ndarray, gain: float, quota: bool = False) -> None:
        counts = np.bincount(np.asarray(pitches) % 12, minlength=12).astype(np.float64)
        self.target = (counts + KEY_SMOOTHING) / (counts.sum() + 12 * KEY_SMOOTHING)
        self.prior = self.target * KEY_PRIOR_NOTES  # the steer's: no bias until the model plays
        self.shares = counts / counts.sum()  # the quota's: the prompt's own, unsmoothed
        self.own = np.zeros(12)  # the model's own notes per class
        self.gain, self.quota = gain, quota
        self.bias = torch.zeros(VOCAB_SIZE)
        self._update()

    def observe(self, pitch: int) -> None:
        self.own[pitch % 12] += 1
        self._update()

    def over_quota(self) -> np.ndarray:
        """Bool [12]: the pitch classes ruled out for the next note. Where some class of the
        prompt's is the slack or more short of its share of the model's notes (half a note, then
        a note for every SLACK_NOTES the model played, up to QUOTA_SLACK), every
        class but those. Where none is, the steer decides, but not on a class the prompt
        never played once it played MIN_KEY_CLASSES or more (fewer say too little about the
        key; the steer's smoothing played those, BENCHMARKS.md, issue 18). A note in such a
        class still counts among the model's notes, so it puts the prompt's classes behind."""
        keyed = self.shares > 0
        shortfall = self.shares * (self.own.sum() + 1) - self.own
        slack = np.clip(self.own.sum() / SLACK_NOTES, 0.5, QUOTA_SLACK)
        short = keyed & (shortfall >= slack)
        if short.any():
            return ~short
        return ~keyed if keyed.sum() >= MIN_KEY_CLASSES else short

    def _update(self) -> None:
        played = self.prior + self.own
        share = played / played.sum()
        per_class = np.clip(self.gain * np.log(self.target / share), -DENSITY_LIMIT, DENSITY_LIMIT)
        if self.quota:
            per_class[self.over_quota()] = -QUOTA_NATS
        self.bias[NOTE_ON : NOTE_ON + 128] = torch.from_numpy(per_class[PITCH_CLASS])


class RegisterSteer:
    """A NOTE_ON tilt towards the player's mean pitch `target`: -tilt nats per octave above
    it (+ below), per pitch within +-DENSITY_LIMIT. The tilt integrates the model's own
    notes' distance from the target (`rate` nats per octave per octave), so it grows for as
    long as the model keeps off the target and holds where its notes centre on it: a
    correction in proportion to the drift alone would leave the model's own preference for a
    register as a standing offset."""

    def __init__(self, target: float, rate: float) -> None:
        self.target, self.rate = target, rate
        self.tilt = 0.0  # nats per octave, against the side the model has kept to
        self.octaves = (np.arange(128) - target) / 12.0  # each pitch's distance from it
        self.bias = torch.zeros(VOCAB_SIZE)

    def observe(self, pitch: int) -> None:
        step = self.rate * (pitch - self.target) / 12.0
        self.tilt = float(np.clip(self.tilt + step, -DENSITY_LIMIT, DENSITY_LIMIT))
        per_pitch = np.clip(-self.tilt * self.octaves, -DENSITY_LIMIT, DENSITY_LIMIT)
        self.bias[NOTE_ON : NOTE_ON + 128] = torch.from_numpy(per_pitch)
