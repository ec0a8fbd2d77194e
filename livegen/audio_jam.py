"""The engine's side of a jam with an audio preset: the preset seen as the engine sees a
preset, the checks that make every bad input one clear line, the shared rings, and the
audio model's worker in the decode worker's place.

The rest of the engine is the MIDI jam's: the player's keys, the modes' turns, the cuts, the
recorder and the FluidSynth render of the player in the audio callback. What differs is the
model: it hears the sound (livegen/audio_context.py), writes codec frames (livegen/
audio_worker.py) and is heard through the callback (livegen/model_voice.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from livegen.kernels.errors import LivegenError, PresetError
from livegen.models.preset import SamplingDefaults, Sound, find_preset, preset_kind

if TYPE_CHECKING:
    from livegen.audio_out import AudioInDevice, AudioInPort


class AudioJamError(LivegenError):
    """An audio preset's jam cannot start as asked."""


@dataclass
class AudioJamPreset:
    """An audio preset, with the fields the engine reads of any preset."""

    name: str
    source: Path
    model_dir: Path
    codec: str
    sound: Sound  # the player's FluidSynth render (the preset's [render])
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)
    kind: str = "audio"


def is_audio_preset(name: str) -> bool:
    try:
        return preset_kind(find_preset(name)) == "audio"
    except PresetError:
        return False


def load_audio_jam_preset(name: str) -> AudioJamPreset:
    """The preset, its model's header and its codec's, checked now (PresetError, one line)."""
    from livegen.models.audio_preset import load_audio_preset
    from livegen.models.checkpoint import load_config
    from livegen.models.codec_files import load_codec_config
    from livegen.models.codec_preset import load_codec_preset

    preset = load_audio_preset(name)
    config, _ = load_config(preset.model_dir)
    if config.tokens != "audio":
        raise PresetError(f"{preset.source}: its model is not a model of codec tokens")
    spec = preset.codec_spec
    folder = Path(spec) if Path(spec).is_dir() else load_codec_preset(spec).model_dir
    codec, _ = load_codec_config(folder)  # a missing codec folder: PresetError naming it
    if codec.codebook_size != config.codebook_size or codec.levels < config.levels:
        raise PresetError(
            f"{preset.source}: its model expects {config.levels} levels x "
            f"{config.codebook_size} codes; codec {preset.codec!r} has "
            f"{codec.levels} x {codec.codebook_size}"
        )
    sound = Sound(soundfont=preset.render.soundfont, program=preset.render.program)
    return AudioJamPreset(preset.name, preset.source, preset.model_dir, spec, sound)


def codec_timing(preset: AudioJamPreset) -> tuple[int, int]:
    """(the codec's sample rate, its hop in samples)."""
    from livegen.models.codec_files import load_codec_config
    from livegen.models.codec_preset import load_codec_preset

    spec = preset.codec
    folder = Path(spec) if Path(spec).is_dir() else load_codec_preset(spec).model_dir
    config, _ = load_codec_config(folder)
    return config.sample_rate, config.hop


def make_rings(preset: AudioJamPreset, settings):  # noqa: ANN001, ANN201 - JamSettings
    """The shared rings for this jam (livegen/audio_rings.py), after the check that the
    sound can carry an audio model."""
    from livegen.audio_rings import AudioRings
    from livegen.resampling import resampling_factor

    if settings.audio_device == "none":
        raise AudioJamError(
            f"preset {preset.name!r} is an audio model: it is heard only through the sound "
            "output (drop --audio-device none)"
        )
    codec_rate, hop = codec_timing(preset)
    factor = resampling_factor(settings.sample_rate, codec_rate)
    return AudioRings.create(settings.sample_rate, hop * factor)


def audio_worker_spec(engine, rings):  # noqa: ANN001, ANN201 - JamEngine, AudioRings
    from livegen.audio_worker import AudioWorkerSpec

    return AudioWorkerSpec(engine.worker_spec(str(engine.preset.source)), rings.layout)


def refuse_midi_preset_for_audio_in(name: str) -> None:
    """--audio-in feeds an audio model: with a MIDI preset it has nowhere to go."""
    raise AudioJamError(
        f'--audio-in needs an audio preset (kind = "audio"); {name!r} is a MIDI model '
        "(livegen presets lists them)"
    )


def check_audio_in(name: str) -> AudioInPort | AudioInDevice:
    """What --audio-in names: a JACK port that sends audio, or, with no JACK server about,
    an input device (the audio process picks it by name, as --audio-device, and says so if
    none matches); a wrong port is one clear line."""
    from livegen.audio_out import AudioInDevice, AudioInPort
    from livegen.jack_ports import audio_ports

    ports = audio_ports("output")
    if ports is None:
        return AudioInDevice(name)  # no JACK: a microphone or line input of the sound card
    if name not in ports:
        listed = ", ".join(ports) or "none"
        raise AudioJamError(f"--audio-in: no JACK audio port {name!r}; ports: {listed}")
    return AudioInPort(name)
