"""Stop signals: the first one stops, the following ones are ignored (a second one inside the first handler
used to deadlock on threading.Event's lock)."""

from __future__ import annotations

import os
import signal

from flowscope.stopping import STOP_SIGNALS, on_stop_signal, stop_event


def test_the_first_stop_signal_stops_once_and_the_rest_are_ignored() -> None:
    saved = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    try:
        calls = []
        on_stop_signal(lambda: calls.append(1))
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [1]
        assert all(signal.getsignal(number) == signal.SIG_IGN for number in STOP_SIGNALS)
        event = stop_event((signal.SIGTERM,))
        os.kill(os.getpid(), signal.SIGTERM)
        assert event.is_set()
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
