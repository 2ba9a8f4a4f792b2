"""Stop signals become one orderly stop: raised at once, held while a child is being recorded,
and, once stopping, a hurry instead of a second exception."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ringrift.infra.stopsignals import STOP_SIGNALS, StopRequested, StopSignals, held


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # the handler runs in the main thread at the next bytecode boundary


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_each_stop_signal_raises_stop_requested(sig: int) -> None:
    with StopSignals() as signals, pytest.raises(StopRequested) as caught:
        _deliver(sig)
    assert caught.value.signum == sig and caught.value.exit_status == 128 + sig
    assert caught.value.name == signal.Signals(sig).name
    assert signals.received == sig


def test_a_signal_inside_held_waits_for_the_block_to_end() -> None:
    recorded = []
    with StopSignals(), pytest.raises(StopRequested):
        with held():
            _deliver(signal.SIGTERM)
            recorded.append("child pid")  # still runs: the signal is held
        recorded.append("after")  # never runs: raised as the block ended
    assert recorded == ["child pid"]


def test_once_stopping_a_signal_hurries_instead_of_raising() -> None:
    hurried = []
    with StopSignals() as signals:
        signals.stopping(lambda: hurried.append(True))
        _deliver(signal.SIGINT)
        _deliver(signal.SIGHUP)
    assert hurried == [True, True]
    assert signals.received == signal.SIGINT  # the first one is the one reported


def test_previous_handlers_come_back() -> None:
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with StopSignals():
        assert all(signal.getsignal(s) != before[s] for s in STOP_SIGNALS)
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before


def test_held_is_a_no_op_without_stop_signals() -> None:
    with held():
        value = 1
    assert value == 1
