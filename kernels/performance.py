"""Hot loops of the performance encoding, compiled with numba.

Three kernels, each a line-for-line port of what Magenta's note_seq does (see docs/TOKENS.md):

- ``apply_sustain``: sequences_lib.apply_sustain_control_changes (pedal holds note-offs back,
  a re-strike under the pedal shortens the earlier note).
- ``encode_notes``: quantise to 10 ms steps and emit token ids (performance_lib's
  Performance._from_quantized_sequence with 32 velocity bins).
- ``decode_tokens``: token ids back to notes (Performance._to_sequence, FIFO per pitch).

They take and return plain numpy arrays so that callers (the tokenizer, the data builder)
never pay for Python objects per note. ``cache=True`` keeps the compiled code on disk, so
only the first process on a machine pays the compile.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from livegen.kernels.midi_codes import PEDAL_DOWN
from livegen.kernels.time_steps import seconds_to_step, write_time_shifts
from livegen.kernels.vocab import (
    MAX_SHIFT_STEPS,
    NOTE_OFF,
    NOTE_ON,
    NUM_EVENTS,
    NUM_PITCHES,
    STEPS_PER_SECOND,
    TIME_SHIFT,
    VELOCITY,
    VELOCITY_BIN_SIZE,
)

# Event kinds of the sustain walk. At equal times they are processed in this order, as in
# note_seq: pedal changes first, so a note struck together with a pedal-down is held.
SUSTAIN_ON = 0
SUSTAIN_OFF = 1
ONSET = 2
OFFSET = 3

# note_seq's velocity for notes that come before any VELOCITY token.
DEFAULT_VELOCITY = 64

# The decoder places the k-th "descending" onset of a step k sub-slots after the step, so
# that re-encoding sorts the notes of that step back into the order of the tokens (the
# encoder orders a step's onsets by their unquantised start times). 9 slots of 0.5 ms stay
# below half a step, so every onset still quantises to its own step.
SUBSTEP_SECONDS = 0.0005
MAX_SUBSTEP_SLOTS = 9


# The rounding rule and the TIME_SHIFT code of kernels/time_steps.py, compiled here.
quantize = njit(cache=True)(seconds_to_step)
_write_time_shifts = njit(cache=True)(write_time_shifts)


@njit(cache=True)
def _drop_active(active, slot, note, n_active):
    """Remove `note` from the active set (swap in the last one); returns the new size."""
    a = slot[note]
    n_active -= 1
    moved = active[n_active]
    active[a] = moved
    slot[moved] = a
    slot[note] = -1
    return n_active


@njit(cache=True)
def apply_sustain(start, end, pitch, group, pedal_time, pedal_group, pedal_value):
    """Sustain pedal (CC64) applied per group: returns (new_end, keep).

    Notes are given in list order (that order breaks ties between equal events, as in
    note_seq); ``group`` is the pedal group of each note (note_seq: the instrument). Times
    are float seconds or exact integers (a file's TempoMap units): all of one dtype.
    ``keep`` is False for notes a re-strike at their own start time wiped out.
    """
    n = start.shape[0]
    m = pedal_time.shape[0]
    new_end = end.copy()
    keep = np.ones(n, dtype=np.bool_)
    any_down = False
    for j in range(m):
        if pedal_value[j] >= PEDAL_DOWN:
            any_down = True
            break
    # Without a pedal-down event the walk provably changes nothing.
    if n == 0 or not any_down:
        return new_end, keep

    n_groups = 0
    for i in range(n):
        n_groups = max(n_groups, group[i] + 1)
    for j in range(m):
        n_groups = max(n_groups, pedal_group[j] + 1)

    # Events laid out by kind (pedal-on, pedal-off, onsets, offsets), each kind in list
    # order; a stable sort on time then yields note_seq's order (time, kind, list order).
    total = 2 * n + m
    ev_time = np.empty(total, dtype=start.dtype)
    ev_kind = np.empty(total, dtype=np.int8)
    ev_ref = np.empty(total, dtype=np.int64)
    k = 0
    for want in (SUSTAIN_ON, SUSTAIN_OFF):
        for j in range(m):
            down = pedal_value[j] >= PEDAL_DOWN
            if (want == SUSTAIN_ON) == down:
                ev_time[k] = pedal_time[j]
                ev_kind[k] = want
                ev_ref[k] = j
                k += 1
    for i in range(n):
        ev_time[k] = start[i]
        ev_kind[k] = ONSET
        ev_ref[k] = i
        k += 1
    for i in range(n):
        ev_time[k] = end[i]
        ev_kind[k] = OFFSET
        ev_ref[k] = i
        k += 1
    order = np.argsort(ev_time, kind="mergesort")

    # Active notes: an unordered set (order never matters to the walk) with O(1) removal.
    active = np.empty(n, dtype=np.int64)
    slot = np.full(n, -1, dtype=np.int64)
    n_active = 0
    held = np.zeros(n_groups, dtype=np.bool_)
    t = start[0]  # of the times' own dtype; the walk sets it before it is read
    for e in order:
        t = ev_time[e]
        kind = ev_kind[e]
        r = ev_ref[e]
        if kind == SUSTAIN_ON:
            held[pedal_group[r]] = True
        elif kind == SUSTAIN_OFF:
            g = pedal_group[r]
            held[g] = False
            a = 0
            while a < n_active:
                note = active[a]
                if group[note] == g and new_end[note] < t:
                    # Held only by the pedal: it ends now.
                    new_end[note] = t
                    n_active = _drop_active(active, slot, note, n_active)
                else:
                    a += 1
        elif kind == ONSET:
            g = group[r]
            if held[g]:
                a = 0
                while a < n_active:
                    note = active[a]
                    if group[note] == g and pitch[note] == pitch[r]:
                        # Re-strike under the pedal ends the earlier note here.
                        new_end[note] = t
                        if start[note] == t:
                            keep[note] = False
                        n_active = _drop_active(active, slot, note, n_active)
                    else:
                        a += 1
            active[n_active] = r
            slot[r] = n_active
            n_active += 1
        else:
            if not held[group[r]] and slot[r] >= 0:
                n_active = _drop_active(active, slot, r, n_active)
    # Notes the pedal still holds at the end close at the last event.
    for a in range(n_active):
        new_end[active[a]] = t
    return new_end, keep


@njit(cache=True)
def encode_notes(start, end, pitch, velocity, keep):
    """Token ids (int16) of notes sorted by (start, pitch), times in float seconds (quantised
    by the one rounding rule); notes with keep False are skipped."""
    n = start.shape[0]
    on_step = np.empty(n, dtype=np.int64)
    off_step = np.empty(n, dtype=np.int64)
    for i in range(n):
        on_step[i] = quantize(start[i])
        off_step[i] = quantize(end[i])
    return encode_steps(on_step, off_step, pitch, velocity, keep)


@njit(cache=True)
def encode_steps(start_step, end_step, pitch, velocity, keep):
    """Token ids (int16) of notes sorted by (start, pitch), times already in steps; notes
    with keep False are skipped.

    Onsets and offsets are ordered as note_seq orders them: by step, then by note index, an
    onset before the offset of the same note. Time shifts come only before an event.
    """
    n_all = start_step.shape[0]
    n = 0
    for i in range(n_all):
        if keep[i]:
            n += 1
    on_step = np.empty(n, dtype=np.int64)
    off_step = np.empty(n, dtype=np.int64)
    note_pitch = np.empty(n, dtype=np.int64)
    note_bin = np.empty(n, dtype=np.int64)
    j = 0
    last_step = 0
    for i in range(n_all):
        if not keep[i]:
            continue
        s = start_step[i]
        e = end_step[i]
        if e <= s:
            # note_seq: a note lasts at least one step (end == start there; end < start
            # cannot come out of the sustain walk, but garbage input should not crash).
            e = s + 1
        on_step[j] = s
        off_step[j] = e
        note_pitch[j] = pitch[i]
        note_bin[j] = (velocity[i] - 1) // VELOCITY_BIN_SIZE + 1
        last_step = max(last_step, e)
        j += 1

    # One sortable key per event: (step, note index, is_offset).
    keys = np.empty(2 * n, dtype=np.int64)
    for i in range(n):
        keys[2 * i] = (on_step[i] * n + i) * 2
        keys[2 * i + 1] = (off_step[i] * n + i) * 2 + 1
    keys.sort()

    # At most: 2n events, n velocity changes, one shift per event plus one per 100 steps.
    out = np.empty(5 * n + last_step // MAX_SHIFT_STEPS + 1, dtype=np.int16)
    k = 0
    current = 0
    current_bin = 0
    for key in keys:
        is_off = key & 1
        rest = key >> 1
        step = rest // n
        i = rest - step * n
        k = _write_time_shifts(out, k, step - current)
        current = step
        if is_off:
            out[k] = NOTE_OFF + note_pitch[i]
            k += 1
        else:
            b = note_bin[i]
            if b != current_bin:
                out[k] = VELOCITY + b - 1
                k += 1
                current_bin = b
            out[k] = NOTE_ON + note_pitch[i]
            k += 1
    return out[:k]


@njit(cache=True)
def decode_tokens(tokens):
    """Token ids to notes: (start_seconds, end_seconds, pitch, velocity), in onset order.

    Any sequence decodes: ids outside the 388 events (specials, garbage) are skipped, a
    NOTE_OFF with no open note of its pitch is ignored, a NOTE_OFF closes the OLDEST open
    note of its pitch (note_seq), and notes still open at the end close at the final time.
    A note lasts at least one step (the encoder's rule), where note_seq drops empty notes.
    """
    n_tok = tokens.shape[0]
    n_on = 0
    for x in tokens:
        if NOTE_ON <= x < NOTE_ON + NUM_PITCHES:
            n_on += 1
    start = np.empty(n_on, dtype=np.float64)
    start_step = np.empty(n_on, dtype=np.int64)
    end_step = np.empty(n_on, dtype=np.int64)
    pitch = np.empty(n_on, dtype=np.int64)
    velocity = np.empty(n_on, dtype=np.int64)
    # A FIFO of open notes per pitch, as linked lists through `nxt`.
    head = np.full(NUM_PITCHES, -1, dtype=np.int64)
    tail = np.full(NUM_PITCHES, -1, dtype=np.int64)
    nxt = np.full(n_on, -1, dtype=np.int64)

    step = 0
    vel = DEFAULT_VELOCITY
    count = 0
    sub = 0  # sub-slot of the current step's onsets
    last_on_pitch = -1  # pitch of the previous onset in this step
    for t in range(n_tok):
        x = tokens[t]
        if x < 0 or x >= NUM_EVENTS:
            continue
        if x < NOTE_OFF:
            p = x - NOTE_ON
            if p < last_on_pitch and sub < MAX_SUBSTEP_SLOTS:
                sub += 1
            last_on_pitch = p
            start_step[count] = step
            start[count] = step / STEPS_PER_SECOND + sub * SUBSTEP_SECONDS
            end_step[count] = -1
            pitch[count] = p
            velocity[count] = vel
            if tail[p] < 0:
                head[p] = count
            else:
                nxt[tail[p]] = count
            tail[p] = count
            count += 1
        elif x < TIME_SHIFT:
            p = x - NOTE_OFF
            i = head[p]
            if i < 0:
                continue
            head[p] = nxt[i]
            if head[p] < 0:
                tail[p] = -1
            end_step[i] = max(step, start_step[i] + 1)
        elif x < VELOCITY:
            step += x - TIME_SHIFT + 1
            sub = 0
            last_on_pitch = -1
        else:
            vel = 1 + (x - VELOCITY) * VELOCITY_BIN_SIZE
    end = np.empty(n_on, dtype=np.float64)
    for i in range(n_on):
        if end_step[i] < 0:
            end_step[i] = max(step, start_step[i] + 1)
        end[i] = end_step[i] / STEPS_PER_SECOND
    return start, end, pitch, velocity
