"""The numbers of the MIDI 1.0 specification livegen reads and writes, named once.

Status bytes carry the channel in their low nibble (``status | channel``); controllers are the
first data byte of a control change. Channels count from 0 here, as on the wire.
"""

from __future__ import annotations

# Channel-message kinds: the high nibble of a status byte.
NOTE_OFF_STATUS = 0x80
NOTE_ON_STATUS = 0x90
POLY_AFTERTOUCH_STATUS = 0xA0
CONTROL_CHANGE_STATUS = 0xB0
PROGRAM_CHANGE_STATUS = 0xC0
CHANNEL_PRESSURE_STATUS = 0xD0
PITCH_BEND_STATUS = 0xE0
SYSTEM_STATUS = 0xF0  # and above: system messages, no channel
STATUS_BIT = 0x80  # set on status bytes, clear on data bytes
DATA_MASK = 0x7F
KIND_MASK = 0xF0
CHANNEL_MASK = 0x0F

# Controllers.
SUSTAIN_CC = 64
PEDAL_DOWN = 64  # a sustain value >= this holds the pedal down
ALL_SOUND_OFF = 120
RESET_ALL_CONTROLLERS = 121
ALL_NOTES_OFF = 123

CHANNELS = 16
DRUM_CHANNEL = 9  # channel 10 counted from 1 (General MIDI percussion)
DRUM_BANK = 128  # FluidSynth's (and SoundFonts') bank of the percussion kits
DEFAULT_TEMPO = 500_000  # microseconds per quarter note (120 bpm), the MIDI default


def pedal_down(value: int) -> bool:
    """Whether a sustain-pedal controller value holds the pedal down."""
    return value >= PEDAL_DOWN
