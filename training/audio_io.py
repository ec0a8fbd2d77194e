"""Audio files in and out: any format soundfile reads (wav, flac, ogg), any rate and channel
count, mixed down to mono float32 and resampled (polyphase, scipy) to the rate asked for.

Every failure (not audio, empty, truncated, missing) is an AudioFileError with one line.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from livegen.kernels.errors import LivegenError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au"}


class AudioFileError(LivegenError):
    """An audio file that cannot be read: missing, empty, truncated or not audio."""


def _soundfile():
    import soundfile

    return soundfile


def audio_info(path: str | Path) -> tuple[int, int]:
    """(frames, sample rate) of a file, checked readable at both ends."""
    sf = _soundfile()
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
        frames = int(info.frames)
        if frames <= 0:
            raise AudioFileError(f"{path}: empty audio file (no samples)")
        with sf.SoundFile(str(path)) as handle:
            handle.read(min(frames, 1024), dtype="float32")
            # The last second, not the last frames: an MP3 header's count is approximate.
            handle.seek(max(0, frames - int(info.samplerate)))
            tail = handle.read(int(info.samplerate), dtype="float32")
        if len(tail) == 0 or _wav_short(path):
            raise AudioFileError(f"{path}: truncated (fewer samples than its header says)")
    except AudioFileError:
        raise
    except Exception as error:  # soundfile raises LibsndfileError/RuntimeError variants
        raise AudioFileError(f"{path}: not a readable audio file ({_reason(error)})") from None
    return frames, int(info.samplerate)


def _wav_short(path: Path) -> bool:
    """A RIFF/WAVE file whose data chunk claims more bytes than the file holds (libsndfile
    quietly reads what is there, so a cut-off download would pass for a shorter sound)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        size = path.stat().st_size
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return False
            length = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                return length != 0xFFFFFFFF and handle.tell() + length > size
            handle.seek(length + (length & 1), 1)


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling of mono float audio (scipy.signal.resample_poly)."""
    if source_rate == target_rate or len(audio) == 0:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = Fraction(target_rate, source_rate).limit_denominator(1000)
    out = resample_poly(audio, ratio.numerator, ratio.denominator)
    return out.astype(np.float32, copy=False)


def read_audio(
    path: str | Path, sample_rate: int, start: float = 0.0, seconds: float | None = None
) -> np.ndarray:
    """Mono float32 at sample_rate: the whole file, or `seconds` from `start` (seconds)."""
    sf = _soundfile()
    frames, rate = audio_info(path)
    first = min(int(start * rate), frames)
    count = frames - first if seconds is None else min(int(seconds * rate), frames - first)
    try:
        data = sf.read(str(path), start=first, frames=count, dtype="float32", always_2d=True)[0]
    except Exception as error:
        raise AudioFileError(f"{path}: cannot read ({_reason(error)})") from None
    if seconds is None and len(data) < count:
        raise AudioFileError(f"{path}: truncated ({len(data)} of {count} frames)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return resample(np.ascontiguousarray(mono), rate, sample_rate)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """WAV/FLAC as 16-bit PCM, .ogg as Vorbis; written to a temporary name, renamed into place."""
    sf = _soundfile()
    path = Path(path)
    suffix = path.suffix.lower()
    tmp = path.with_name(".tmp-" + path.name)
    subtype = "VORBIS" if suffix in (".ogg", ".oga") else "PCM_16"
    kind = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG"}.get(suffix, "WAV")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sample_rate, subtype=subtype, format=kind)
    tmp.replace(path)


def list_audio(folders: list[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise LivegenError(f"{folder}: no such folder")
        files.extend(
            p for p in sorted(Path(folder).rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES
        )
    return files
