"""JACK's audio ports through jackd2's own tools (jack_lsp, jack_connect, jack_disconnect):
what --audio-in may name, and wiring it to livegen's input port.

PortAudio opens livegen's JACK client and names its ports itself (PortAudio:in_0, or
PortAudio-01:in_0 when another PortAudio program runs), and connects its input to the
physical capture ports. So the audio process lists the ports before and after its stream
opens, takes the new input port as its own, and rewires it to the port asked for.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def _tool(*args: str) -> subprocess.CompletedProcess | None:
    if shutil.which(args[0]) is None:
        return None
    env = {**os.environ, "JACK_NO_START_SERVER": "1"}
    try:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None


def audio_ports(direction: str = "output") -> list[str] | None:
    """JACK's audio ports of a direction ("output": capture ports and programs' outputs,
    what may be heard); None when no JACK server answers."""
    done = _tool("jack_lsp", "-p", "-t")
    if done is None or done.returncode != 0 or "not running" in done.stderr + done.stdout:
        return None
    ports, lines = [], done.stdout.splitlines()
    for name, properties, kind in zip(lines[::3], lines[1::3], lines[2::3]):
        if direction in properties and "audio" in kind:
            ports.append(name.strip())
    return ports


def connections(port: str) -> list[str]:
    done = _tool("jack_lsp", "-c", port)
    if done is None:
        return []
    return [line.strip() for line in done.stdout.splitlines()[1:] if line.startswith((" ", "\t"))]


def wire_input(source: str, before: set[str]) -> str:
    """Connect `source` to the input port that appeared since `before` (livegen's), alone;
    returns that port. OSError when it cannot."""
    now = audio_ports("input") or []
    ours = sorted(set(now) - before)
    if not ours:
        raise OSError("livegen's JACK input port did not appear")
    port = ours[0]
    for other in connections(port):
        _tool("jack_disconnect", other, port)
    done = _tool("jack_connect", source, port)
    if done is None or done.returncode != 0:
        raise OSError(f"could not connect {source} to {port}: {done.stderr if done else ''}")
    return port
