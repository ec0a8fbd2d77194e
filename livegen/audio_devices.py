"""The audio output devices a picker shows: PortAudio probed in a child process, cached;
and `pick_device`, which finds the one a name asks for, in the process that opens it.

PortAudio initialised in this process would tie it to the JACK server it found, which may go
away while livegen runs; a child process asks PortAudio once and exits. The list is cached and
refreshed in the background, so a picker never waits for it after the first time.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

_AUDIO_PROBE = """
import json, sys
try:
    import sounddevice as sd
    apis = sd.query_hostapis()
    out = [f"{d['name']} ({apis[d['hostapi']]['name']})" for d in sd.query_devices()
           if d['max_output_channels'] > 0]
    print(json.dumps({"devices": out}))
except Exception as error:
    print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
"""


class _AudioDevices:
    def __init__(self) -> None:
        self.devices: list[str] | None = None
        self.error: str | None = None
        self.checked = 0.0
        self._refreshing = threading.Lock()

    def probe(self) -> None:
        import json

        with self._refreshing:
            try:
                done = subprocess.run(
                    [sys.executable, "-c", _AUDIO_PROBE],
                    capture_output=True,
                    text=True,
                    timeout=20,
                    check=False,
                )
                lines = done.stdout.strip().splitlines()
                result = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()}
            except (OSError, subprocess.TimeoutExpired, ValueError) as error:
                result = {"error": str(error)}
            self.devices = result.get("devices", [])
            self.error = result.get("error")
            self.checked = time.monotonic()

    def get(self, max_age: float = 5.0) -> list[str]:
        if self.devices is None:
            self.probe()  # the first time only: ~0.3 s in a child process
        elif time.monotonic() - self.checked > max_age and not self._refreshing.locked():
            threading.Thread(target=self.probe, name="livegen-audio-probe", daemon=True).start()
        return list(self.devices or [])


_AUDIO = _AudioDevices()


def list_audio_devices() -> list[str]:
    """Audio output devices as "name (host API)". The first call probes PortAudio in a child
    process (~0.3 s); later calls return the cached list at once and refresh it in the
    background when it is older than 5 s (call prefetch_device_lists() early to warm it)."""
    return _AUDIO.get()


def audio_probe_error() -> str | None:
    """Why the last audio probe found nothing (PortAudio missing, ...), if it failed."""
    return _AUDIO.error


def pick_device(sd, wanted: str | None, kind: str = "output") -> int | None:  # noqa: ANN001
    """A sounddevice device index ("output" or "input" devices) by index, exact name or
    unique substring."""
    if wanted is None:
        return None
    apis = [api["name"] for api in sd.query_hostapis()]
    devices = [
        (i, d["name"], f"{d['name']} ({apis[d['hostapi']]})")
        for i, d in enumerate(sd.query_devices())
        if d[f"max_{kind}_channels"]
    ]
    if wanted.isdigit() and any(i == int(wanted) for i, _, _ in devices):
        return int(wanted)
    # `livegen ports` lists devices as "name (host API)": that form names one exactly too.
    for i, name, listed in devices:
        if wanted in (name, listed):
            return i
    matches = [(i, name) for i, name, _ in devices if wanted.lower() in name.lower()]
    if len(matches) == 1:
        return matches[0][0]
    names = ", ".join(name for _, name, _ in devices) or "none"
    raise LookupError(
        f"audio {kind} device {wanted!r} matches {len(matches)} devices; {kind} devices: {names}"
    )
