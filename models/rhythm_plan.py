"""The model's rhythm from the player's: when its notes start, how many at once, how long.

A model trained on scores keeps its own pace whatever it continues (BENCHMARKS.md, issue 18:
on the player's grid it still plays 80 ms apart where the player played 80, 160 and 240 ms
apart, and masking its onsets only makes it end its notes sooner). `RhythmPlan` draws the
rhythm from what the player just played instead, one onset at a time:

- each model onset is one of the player's onsets, dealt like a card from a deck of them (each
  once a round; in the player's own order, or shuffled anew each round): it gets that onset's
  chord size (the model may not move on before the chord is full, nor add more), its notes'
  lengths (longest first: a note's NOTE_OFF is written when its time comes, not before), and
  the interval after it (until then the model may not start a note, as time stops there, and
  then it must).

Which notes, and how loud, stays the model's choice. Dealt in new orders, the player's onsets
give the model's rhythm the player's proportions (inter-onset histogram, onset rate, chord
sizes and the lengths that go with them, so density and polyphony) exactly over each round,
where drawing each at random spread them (BENCHMARKS.md, issue 18). On a pulse
(models/pulse.py) an interval that lies within the pulse's tolerance of a grid point lands on
it, so the model stays in phase with the player.

New orders are not new bars when the player kept to one or two intervals: dealt from steady
eighths, the model plays steady eighths, the player's own second again and again. So where the
second that an onset would close is one the player played (kernels/onset_patterns.py: the
same 50 ms grid, at any offset; over a longer `memory` than the deck's span when given, as a
rhythm from 10 s ago is no new one either), the plan first deals another card left in the
round whose interval closes a new second instead: the player's onsets in a new order, so their
intervals, chords and lengths stay exactly theirs. Only where no card does (steady eighths:
every card the same) does it vary the rhythm, with probability `variation`: it leaves the
onset out (a join: the next one comes an interval later) or puts one in before it (a split),
in turns, so the onset rate stays the player's; made of the player's own intervals where they
allow it (two of their 20s for one of their 40s), halving or lengthening one where they do
not. A variation that leaves a second of one or two onsets is not taken: that is no figure, so
no new one. One change a second is enough to make the second new, and costs the player's
interval histogram far less than varying intervals at random (BENCHMARKS.md, issue 18).
"""

from __future__ import annotations

import numpy as np
import torch

from livegen.kernels.onset_patterns import (
    SLOT_STEPS,
    WINDOW_SLOTS,
    onset_slots,
    window_pattern,
    window_patterns,
)
from livegen.kernels.vocab import NOTE_OFF, NOTE_ON, NUM_EVENTS, TIME_SHIFT, VELOCITY, VOCAB_SIZE
from livegen.models.pulse import Pulse, tolerance

MIN_INTERVALS = 4  # fewer intervals say too little about a rhythm
USUAL_SHARE = 0.1  # variations are built from intervals the player plays this often
MIN_FIGURE = 3  # onsets in a second that make a figure worth varying


def has_rhythm(starts: np.ndarray) -> bool:
    """The player's onsets (10 ms steps) are enough to draw a rhythm from."""
    return len(np.unique(starts)) > MIN_INTERVALS


def scaled(lengths: np.ndarray, ratio: float) -> np.ndarray:
    """A card's note lengths for an interval `ratio` times its own: a variation that splits
    an interval shortens them with it (a quarter split into two eighths is two eighths; kept
    whole, the split's notes overlapped and thickened the texture), a join lengthens them."""
    if ratio == 1.0:
        return lengths
    return np.maximum(np.round(lengths * ratio).astype(np.int64), 1)


class Deck:
    """Cards 0..size-1 dealt each once a round: over each round the draws hold the player's
    proportions exactly, where drawing at random would spread them (fewer onsets in one
    continuation, more in the next). Each round in a new shuffled order, or with `shuffle`
    off in the player's own (0, 1, 2, ...: their phrase, which the plan then changes only
    where it would repeat one of their seconds)."""

    def __init__(self, size: int, rng: np.random.Generator, shuffle: bool = True) -> None:
        self.size, self.rng, self.shuffle = size, rng, shuffle
        self.left: list[int] = []

    def deal(self) -> int:
        card = self.peek()
        self.left.pop()
        return card

    def peek(self) -> int:
        """The card the next deal gives, left in the deck."""
        if not self.left:  # dealt from the end
            if self.shuffle:
                self.left = self.rng.permutation(self.size).tolist()
            else:
                self.left = list(range(self.size - 1, -1, -1))
        return self.left[-1]

    def exchange(self, dealt: int, wanted: int) -> None:
        """`wanted`, not dealt yet, counts as dealt instead of `dealt`, which takes its place:
        the round still deals every card once (or, where `dealt` was a round's last card and
        `wanted` is from the next round, those two rounds do together)."""
        self.left[self.left.index(wanted)] = dealt


class RhythmPlan:
    """Where the model's next onset, chord and note ends come, for a prompt whose recent
    notes start at `starts` and last `lengths` (10 ms steps), and whose last onset is `last`."""

    def __init__(
        self,
        starts: np.ndarray,
        lengths: np.ndarray,
        last: int,
        pulse: Pulse | None,
        seed: int,
        variation: float = 0.0,
        memory: np.ndarray | None = None,
        shuffle: bool = True,
    ) -> None:
        starts = np.asarray(starts, dtype=np.int64)
        lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
        steps = np.unique(starts)
        self.intervals = np.diff(steps)  # the interval after each onset but the last,
        # and the lengths of that onset's notes, longest first (its chord size is their number)
        self.chords = [np.sort(lengths[starts == step])[::-1] for step in steps[:-1]]
        values, counts = np.unique(self.intervals, return_counts=True)
        usual = counts >= USUAL_SHARE * counts.sum()
        self.vocab = values[usual]  # the player's usual intervals,
        self.shares = counts[usual] / counts.sum()  # and how often they played each
        self.splits_of_theirs = self._splits_of_theirs()
        self.variation = variation
        self.pulse = pulse
        self.rng = np.random.default_rng(seed)
        self.deck = Deck(len(self.intervals), self.rng, shuffle)
        self.last = last  # the latest onset, the player's or the model's
        self.lengths = np.zeros(0, dtype=np.int64)  # the latest model onset's notes' lengths
        self.started = 0  # and how many of its notes are started
        self.ends: dict[int, int] = {}  # pitch -> step its model note is to end
        slots = onset_slots(steps)
        # The player's seconds, at every 50 ms offset inside what they played (`memory`: the
        # onsets of a longer span, when given), and those that recur (at two offsets or
        # more): their bar, where the rest may be a fill.
        remembered = slots if memory is None else onset_slots(np.concatenate([memory, steps]))
        last_window = int(remembered[-1]) - WINDOW_SLOTS + 1
        seen = window_patterns(remembered, int(remembered[0]), last_window)
        self.heard = set(seen)
        self.recurring = {pattern for pattern, times in seen.items() if times > 1}
        self.slots = slots[-WINDOW_SLOTS:].tolist()  # the latest onsets' slots, both players'
        self.splits = 0  # onsets put in minus onsets left out: the variation's balance
        self.put_off: int | None = None  # the onset a split put off until after its half
        _, self.due = self._draw_onset(last, self.deck.deal())

    def _draw_onset(self, after: int, card: int) -> tuple[int, int]:
        """The card of the onset at `after` and the instant of the next onset: the dealt
        `card`'s interval later, where that closes a second the player did not play. Where it
        would repeat one, another card left in this round whose interval closes a new second
        (the player's onsets in a new order: their intervals, chords and lengths stay exactly
        theirs), else the dealt card's interval varied."""
        put_off, self.put_off = self.put_off, None
        if put_off is not None and put_off > after:  # a split's second half
            return card, put_off
        due = self._snap(after, after + int(self.intervals[card]))
        if not (self.variation and self._second(due) in self.heard):
            return card, due
        reordered = self._reordered(after, card)
        if reordered is not None:
            self.deck.exchange(card, reordered[0])
            return reordered
        return card, self._vary(after, due) if self.rng.random() < self.variation else due

    def _reordered(self, after: int, card: int) -> tuple[int, int] | None:
        """A card left in this round whose interval, after the onset at `after`, closes a second
        the player did not play (and is a figure), with the instant of its next onset; None
        where no interval left does. The next cards to come are tried first: in the player's
        own order, the least change to their phrase (two neighbours trade places)."""
        tried = {int(self.intervals[card])}
        self.deck.peek()  # the round's last card: the next round's are there to choose from
        for other in reversed(self.deck.left):
            interval = int(self.intervals[other])
            if interval in tried:
                continue
            tried.add(interval)
            due = self._snap(after, after + interval)
            second = self._second(due)
            if second is not None and second not in self.heard:
                return other, due
        return None

    def _snap(self, after: int, due: int) -> int:
        """`due` moved to the pulse's nearest grid point when it lies within the pulse's
        tolerance of one (an interval the player played off the grid stays off it)."""
        if self.pulse is None:
            return due
        p = self.pulse
        point = int(np.floor(p.phase + np.round((due - p.phase) / p.period) * p.period + 0.5))
        return point if abs(point - due) <= tolerance(p.period) and point > after else due

    def _second(self, *onsets: int) -> int | None:
        """The pattern of the second that onsets at `onsets` would close; None where it holds
        no figure (a second of one or two onsets repeats any slow rhythm)."""
        last = onsets[-1] // SLOT_STEPS
        slots = np.array([*self.slots, *(onset // SLOT_STEPS for onset in onsets)])
        pattern = window_pattern(slots, last - WINDOW_SLOTS + 1)
        return pattern if pattern.bit_count() >= MIN_FIGURE else None

    @property
    def chord(self) -> int:
        """How many notes the latest model onset has (the player's onset it was dealt)."""
        return len(self.lengths)

    def _vary(self, after: int, due: int) -> int:
        """A new second instead of the player's: the onset drawn at `due` left out (a join)
        or one put in before it (a split), whichever keeps the onsets the player's in number.
        The first candidate whose second the player never played is taken, else the first
        whose second they played only once (a fill of theirs, not their bar); none: `due`."""
        fill = None
        for first, put_off in self.variations(after, due):
            if put_off is not None and put_off <= first:
                continue  # the pulse drew both halves to one point: no split
            second = self._second(first) if put_off is None else self._second(first, put_off)
            if second is None:
                continue  # a second of one or two onsets is no figure, so no new one
            if second not in self.heard:
                return self._take(first, put_off)
            if fill is None and second not in self.recurring:
                fill = first, put_off
        return due if fill is None else self._take(*fill)

    def _take(self, first: int, put_off: int | None) -> int:
        """The variation with its onset at `first` (and one put off, for a split) chosen."""
        self.splits += 1 if put_off is not None else -1
        self.put_off = put_off
        return first

    def variations(self, after: int, due: int) -> list[tuple[int, int | None]]:
        """(onset, onset put off behind it or None) candidates in the order they are tried.
        First those made of the player's own intervals (20 + 20 where the player plays 40s
        too: the interval histogram stays theirs): one of theirs split into two of theirs, or
        the drawn interval joined with one of theirs into one of theirs, in a random order
        that favours the intervals they play most (a rest they played once stays rare). Last,
        cutting the drawn interval in two (halves, then thirds) or joining it with the next
        one dealt."""
        drawn = due - after
        own: list[tuple[int, int | None]] = []
        weights: list[float] = []
        if self.splits <= 0:  # a split: one onset more
            own += [(after + part, after + whole) for part, whole, _ in self.splits_of_theirs]
            weights += [weight for _, _, weight in self.splits_of_theirs]
        if self.splits >= 0:  # a join: one onset fewer
            more = self.vocab[self._played(drawn + self.vocab)]
            own += [(due + int(extra), None) for extra in more]
            weights += [self._share(drawn) * self._share(extra) for extra in more]
        # Weighted order without replacement: sort by u ** (1 / weight).
        keys = self.rng.random(len(own)) ** (1.0 / np.maximum(weights, 1e-12))
        candidates = [own[i] for i in np.argsort(-keys, kind="stable")]
        if self.splits <= 0:  # halves first, then thirds, a slot or more each
            cuts = dict.fromkeys([drawn // 2, drawn // 3, drawn - drawn // 3])
            candidates += [(after + c, due) for c in cuts if min(c, drawn - c) >= SLOT_STEPS]
        if self.splits >= 0:  # the next card's interval, looked at, not dealt: a candidate
            # not taken must not take a card from the round (each is played once a round)
            candidates.append((due + int(self.intervals[self.deck.peek()]), None))
        return [
            (self._snap(after, first), put_off if put_off is None else self._snap(after, put_off))
            for first, put_off in candidates
        ]

    def _splits_of_theirs(self) -> list[tuple[int, int, float]]:
        """(part, whole, weight): each usual interval of the player's that two of theirs add
        up to, and the first of the two; weighted by how often they play all three."""
        found = []
        for whole, share in zip(self.vocab, self.shares):
            parts = self.vocab[(self.vocab < whole) & self._played(whole - self.vocab)]
            for part in parts:
                weight = share * self._share(part) * self._share(whole - part)
                found.append((int(part), int(whole), weight))
        return found

    def _played(self, intervals: np.ndarray) -> np.ndarray:
        """Which of `intervals` (steps) the player played, within 6% (a step at least): none
        where no interval of theirs is usual (a free rhythm, every interval a new one)."""
        if not self.vocab.size:
            return np.zeros(len(intervals), dtype=bool)
        return self._nearest(intervals)[1] <= np.maximum(1, 0.06 * intervals)

    def _share(self, interval: int) -> float:
        """The share of the player's intervals that `interval` is (the nearest one's)."""
        return float(self.shares[self._nearest(np.array([interval]))[0][0]])

    def _nearest(self, intervals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each of `intervals`: the index of the nearest usual interval, and how far."""
        distance = np.abs(np.asarray(intervals)[:, None] - self.vocab[None, :])
        return distance.argmin(axis=1), distance.min(axis=1)

    def mask(self, step: int) -> torch.Tensor:
        """Bool [V]: what the plan allows the token at context step `step` to be."""
        allowed = torch.ones(VOCAB_SIZE, dtype=torch.bool)
        for pitch, end in self.ends.items():
            allowed[NOTE_OFF + pitch] = end <= step  # no note ends before its time,
            allowed[NOTE_ON + pitch] = False  # nor by being struck again
        ending = [end for end in self.ends.values() if end <= step]
        chord_open = step == self.last and self.started < self.chord
        onset_due = step >= self.due and step != self.last
        if ending or chord_open or onset_due:  # this instant is not finished: time stays
            allowed[TIME_SHIFT:VELOCITY] = False
        if not (chord_open or onset_due):
            allowed[NOTE_ON:NOTE_OFF] = False
            allowed[VELOCITY:NUM_EVENTS] = False
        # Time may move on only as far as the next onset or note end.
        horizon = min([self.due, *self.ends.values()])
        allowed[TIME_SHIFT + max(horizon - step, 1) : VELOCITY] = False
        return allowed

    def observe(self, token: int, step: int) -> None:
        """The model wrote `token` at context step `step`."""
        if NOTE_ON <= token < NOTE_OFF:
            if step != self.last:
                self.last, self.started = step, 0
                if step // SLOT_STEPS != self.slots[-1]:
                    self.slots = [*self.slots[1 - WINDOW_SLOTS :], step // SLOT_STEPS]
                # one of the player's onsets, as a model onset
                card, self.due = self._draw_onset(step, self.deck.deal())
                interval = int(self.intervals[card])
                self.lengths = scaled(self.chords[card], (self.due - step) / interval)
            # A note at the player's own last onset (a turn that opens at once) gets a step.
            length = self.lengths[min(self.started, len(self.lengths) - 1)] if self.chord else 1
            self.started += 1
            self.ends[token - NOTE_ON] = step + int(length)
        elif NOTE_OFF <= token < TIME_SHIFT:
            self.ends.pop(token - NOTE_OFF, None)
