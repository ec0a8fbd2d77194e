"""A real JACK server (dummy driver) for tests that need audio or MIDI ports.

Every server gets its own name, so tests never talk to a user's JACK or to each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class JackUnavailable(RuntimeError):
    pass


@dataclass
class JackServer:
    name: str
    sample_rate: int
    period: int
    process: subprocess.Popen
    log: typing.IO[bytes] | None = None  # what jackd wrote (its xruns, by client)
    # This process's own test clients on the server (tests/jam_peers.py: Listener, Keyboard),
    # each with `name`, `closed` and close(). Each must close before the server stops: a JACK
    # client that outlives its server crashed the process later, in whichever test ran then
    # (a segfault in tests/test_tui_app.py, from a listener another test left open).
    clients: list[typing.Any] = field(default_factory=list)

    def log_text(self, start: int = 0) -> tuple[str, int]:
        """jackd's log from byte `start` on, and where it ends now (the next start)."""
        if self.log is None:
            return "", start
        # pread: jackd writes through the same open file, at its offset; never move it
        fd = self.log.fileno()
        data = os.pread(fd, max(0, os.fstat(fd).st_size - start), start)
        return data.decode(errors="replace"), start + len(data)

    @property
    def env(self) -> dict[str, str]:
        """Environment for child processes (jack_* tools) that must reach this server."""
        return {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}

    def run_tool(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def connect(self, source: str, destination: str, timeout: float = 5.0) -> None:
        """jack_connect, retried while JACK refuses because a client is not active yet. A
        tool such as jack_midi_dump registers its port (so jack_lsp lists it) before it
        activates its client, and until then JACK refuses the connection (jackd: 'Cannot
        connect ports owned by inactive clients'; jack_connect: 'cannot connect client,
        already connected?'). Any other refusal fails at once, with jackd's words."""
        deadline = time.monotonic() + timeout
        while True:
            _, start = self.log_text()
            done = self.run_tool("jack_connect", source, destination)
            if done.returncode == 0:
                return
            said, _ = self.log_text(start)
            if "is not active" not in said or time.monotonic() > deadline:
                raise AssertionError(f"jack_connect {source} {destination}: {done.stderr} {said}")
            time.sleep(0.02)

    def ports(self) -> list[str]:
        return [line for line in self.run_tool("jack_lsp").stdout.splitlines() if line]

    def wait_for_port(self, fragment: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for port in self.ports():
                if fragment in port:
                    return port
            time.sleep(0.05)
        raise TimeoutError(f"no JACK port containing {fragment!r}; ports: {self.ports()}")


# JACK keeps a registry of at most 8 servers, and a server that dies without unregistering
# (killed) keeps its slot until a server of the SAME name starts. So tests reuse a few names
# instead of fresh random ones: a dead server's slot is reclaimed by the next test, and the
# registry never fills up ("Too many servers already active").
NAMES = 8


def _start(command: list[str], log) -> subprocess.Popen:  # noqa: ANN001
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)


@contextmanager
def jack_server(
    sample_rate: int = 48000, period: int = 128, realtime: bool = False
) -> Iterator[JackServer]:
    if shutil.which("jackd") is None:
        raise JackUnavailable("jackd is not installed (the set-up installs Debian's jackd2)")
    # jackd logs every xrun to stderr: into a file, never an undrained pipe (a full pipe
    # blocks the server mid-cycle, and then it cannot even shut down and unregister).
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = server = None
    tried = []
    first = os.getpid() % NAMES
    for slot in [(first + k) % NAMES for k in range(NAMES)]:
        name = f"livegen-test-{slot}"
        env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1"}
        running = subprocess.run(["jack_wait", "-c"], env=env, capture_output=True, text=True)
        if "running" in running.stdout and "not" not in running.stdout:
            continue  # another test's server has this name now
        command = ["jackd", "-n", name]
        command += [] if realtime else ["--no-realtime"]
        command += ["-d", "dummy", "-r", str(sample_rate), "-p", str(period)]
        process = _start(command, log)
        server = JackServer(name, sample_rate, period, process, log)
        ready = server.run_tool("jack_wait", "-w", "-t", "10", timeout=15)
        time.sleep(0.1)  # a name clash makes jackd exit at once: be sure it is ours that runs
        if "available" in ready.stdout and process.poll() is None:
            break
        tried.append(f"{name}: {ready.stdout.strip()} {ready.stderr.strip()}")
        if process.poll() is None:
            process.kill()
        process.wait()
        process = None
    if process is None:
        log.seek(0)
        err = log.read().decode(errors="replace")[-2000:]
        log.close()
        raise JackUnavailable(f"jackd did not start: {'; '.join(tried)} {err}")
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def jack_session(period: int = 128, realtime: bool = False) -> Iterator[JackServer]:
    """A private server that this process's JACK clients (python-rtmidi, sounddevice) reach
    through JACK_DEFAULT_SERVER while it runs; the environment is restored after."""
    with jack_server(period=period, realtime=realtime) as server:
        previous = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        os.environ["JACK_NO_START_SERVER"] = "1"
        try:
            yield server
        finally:
            left = [client for client in server.clients if not client.closed]
            for client in left:  # closed here, while their server still runs
                client.close()
            if previous is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = previous
        if left:
            names = ", ".join(client.name for client in left)
            raise AssertionError(f"the test left its JACK clients open: {names}")
