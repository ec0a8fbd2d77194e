"""The xrun reader the JACK tests and benchmarks judge by (tests/jack_log.py), on a log written
as jackd writes it."""

from tests.jack_log import Xrun, late_counts, stamped, xruns

LOG = """\
1.000 JackTimedDriver::Process XRun = 4 usec
1.000 JackEngine::XRun: client = livegen out was not finished, state = Triggered
1.001 JackEngine::XRun: client = PortAudio was not finished, state = Triggered
1.002 JackAudioDriver::ProcessGraphAsyncMaster: Process error
1.003 JackAudioDriver::ProcessGraphAsyncMaster: Process error
not a stamped line
2.000 JackEngine::XRun: client = bench-player was not finished, state = Triggered
2.000 JackAudioDriver::ProcessGraphAsyncMaster: Process error
4.000 JackEngine::XRun: client = PortAudio was not finished, state = Triggered
"""


def test_xruns_group_late_clients_until_the_process_error() -> None:
    found = xruns(stamped(LOG))
    assert found == [
        Xrun(1.0, frozenset({"livegen out", "PortAudio"})),
        Xrun(2.0, frozenset({"bench-player"})),
        Xrun(4.0, frozenset({"PortAudio"})),  # cut short by the end of the log: still one
    ]
    assert late_counts(found) == {"livegen out": 1, "PortAudio": 2, "bench-player": 1}


def test_stamped_keeps_the_window() -> None:
    assert xruns(stamped(LOG, 1.5, 3.0)) == [Xrun(2.0, frozenset({"bench-player"}))]
    assert [at for at, _ in stamped(LOG, 1.001, 1.002)] == [1.001, 1.002]
