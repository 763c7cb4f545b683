"""Stopping long-running commands cleanly on SIGINT/SIGTERM.

A handler runs in the main thread between two bytecodes, also in the middle of another handler. Setting a
``threading.Event`` takes its lock, so a second signal arriving while the first handler is inside
``Event.set`` waits on that lock forever: a collector whose workers got SIGTERM twice (from the parent and
from a process-group signal) hung that way in about one run in three. So the first signal ignores the
following ones before it calls ``stop``: a clean stop, once, with whatever flushing it needs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_stop_signal(stop: Callable[[], None], signals: tuple[int, ...] = STOP_SIGNALS) -> None:
    """Call ``stop`` once, at the first of ``signals``; the later ones are ignored."""

    def handler(_signum: int, _frame: object) -> None:
        for number in signals:
            signal.signal(number, signal.SIG_IGN)
        stop()

    for number in signals:
        signal.signal(number, handler)


def stop_event(signals: tuple[int, ...] = STOP_SIGNALS) -> threading.Event:
    """An event the first of ``signals`` sets, from a thread of its own: the handler may run while the main
    thread holds that very event's lock (inside ``stop.wait(poll)``, between taking it and waiting), and
    ``Event.set`` there would wait for it forever. The thread waits until the main thread lets go."""
    event = threading.Event()
    on_stop_signal(lambda: threading.Thread(target=event.set, name="stop", daemon=True).start(), signals)
    return event
