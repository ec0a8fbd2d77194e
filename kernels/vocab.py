"""The token language: ids of the performance encoding, in one place.

The layout follows Magenta's note_seq performance one-hot encoding (the reference livegen
matches token for token): 128 NOTE_ON, 128 NOTE_OFF, 100 TIME_SHIFT (1..100 steps of 10 ms),
32 VELOCITY bins, in that order, then livegen's special ids. Model files record the vocabulary
size and the special ids so that a future change here cannot silently reinterpret weights.
"""

from __future__ import annotations

# Bumped whenever the tokens of some file change (caches of tokens keep one folder per revision).
# 2: a file's time exactly on a half step rounds up (exact tick arithmetic; issue 12).
ENCODING_REVISION = 2

STEPS_PER_SECOND = 100
NUM_PITCHES = 128
MAX_SHIFT_STEPS = 100
NUM_VELOCITY_BINS = 32
VELOCITY_BIN_SIZE = 4  # ceil(127 / 32), as note_seq computes it

NOTE_ON = 0
NOTE_OFF = NOTE_ON + NUM_PITCHES  # 128
TIME_SHIFT = NOTE_OFF + NUM_PITCHES  # 256: id TIME_SHIFT + k means k + 1 steps
VELOCITY = TIME_SHIFT + MAX_SHIFT_STEPS  # 356: id VELOCITY + b means bin b + 1
NUM_EVENTS = VELOCITY + NUM_VELOCITY_BINS  # 388

PAD = NUM_EVENTS  # 388: never a target; fills short sequences
BEGIN = NUM_EVENTS + 1  # 389: starts a piece (no history before it)
END = NUM_EVENTS + 2  # 390: ends a piece
VOCAB_SIZE = NUM_EVENTS + 3  # 391

SPECIAL_IDS = {"pad": PAD, "begin": BEGIN, "end": END}


def velocity_to_bin(velocity: int) -> int:
    """MIDI velocity 1..127 to bin 1..32."""
    return (velocity - 1) // VELOCITY_BIN_SIZE + 1


def bin_to_velocity(velocity_bin: int) -> int:
    """Bin 1..32 to the lowest MIDI velocity of that bin (note_seq's choice)."""
    return 1 + (velocity_bin - 1) * VELOCITY_BIN_SIZE


def token_name(token: int) -> str:
    """A readable name: NOTE_ON_60, NOTE_OFF_60, TIME_SHIFT_25 (25 steps = 250 ms), VELOCITY_20."""
    if NOTE_ON <= token < NOTE_OFF:
        return f"NOTE_ON_{token - NOTE_ON}"
    if NOTE_OFF <= token < TIME_SHIFT:
        return f"NOTE_OFF_{token - NOTE_OFF}"
    if TIME_SHIFT <= token < VELOCITY:
        return f"TIME_SHIFT_{token - TIME_SHIFT + 1}"
    if VELOCITY <= token < NUM_EVENTS:
        return f"VELOCITY_{token - VELOCITY + 1}"
    for name, special in SPECIAL_IDS.items():
        if token == special:
            return name.upper()
    raise ValueError(f"token id {token} is outside the vocabulary (0..{VOCAB_SIZE - 1})")


def token_from_name(name: str) -> int:
    """The inverse of token_name."""
    upper = name.strip().upper()
    if upper.lower() in SPECIAL_IDS:
        return SPECIAL_IDS[upper.lower()]
    kind, _, value = upper.rpartition("_")
    ranges = {
        "NOTE_ON": (NOTE_ON, 0, NUM_PITCHES - 1),
        "NOTE_OFF": (NOTE_OFF, 0, NUM_PITCHES - 1),
        "TIME_SHIFT": (TIME_SHIFT, 1, MAX_SHIFT_STEPS),
        "VELOCITY": (VELOCITY, 1, NUM_VELOCITY_BINS),
    }
    if kind not in ranges or not value.isdigit():
        raise ValueError(f"not a token name: {name!r}")
    base, low, high = ranges[kind]
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{name!r}: value {number} outside {low}..{high}")
    return base + number - low
