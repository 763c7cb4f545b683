"""Stopping long-running commands cleanly on SIGINT/SIGTERM.

A handler runs in the main thread between two bytecodes, also in the middle of another handler. Setting a
``threading.Event`` takes its lock, so a second signal arriving while the first handler is inside
``Event.set`` waits on that lock forever: a collector whose workers got SIGTERM twice (from the parent and
from a process-group signal) hung that way in about one run in three. So the first signal ignores the
following ones before it calls ``stop``: a clean stop, once, with whatever flushing it needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import connection
from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_stop_signal(stop: Callable[[], None], signals: tuple[int, ...] = STOP_SIGNALS) -> None:
    """Call ``stop`` once, at the first of ``signals``; the later ones are ignored."""

    def handler(_signum: int, _frame: object) -> None:
        for number in signals:
            signal.signal(number, signal.SIG_IGN)
        stop()

    for number in signals:
        signal.signal(number, handler)


@contextlib.contextmanager
def ctrl_c_after() -> Iterator[None]:
    """Meanwhile, Ctrl-C (SIGINT) is held back and delivered at the end (``KeyboardInterrupt`` by Python's own
    handler, or whatever handler was installed): a step and its
    bookkeeping are not cut apart (``watch`` recorded a file as metered and was interrupted before counting it,
    so its summary said one file fewer). Only in the main thread, where signal handlers run; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, _frame: caught.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if caught and callable(previous):
        previous(signal.SIGINT, None)  # Python's default handler raises KeyboardInterrupt here
    elif caught and previous == signal.SIG_DFL:
        raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_calls(interrupt: Callable[[], None]) -> Iterator[None]:
    """Meanwhile, Ctrl-C (SIGINT) also calls ``interrupt`` at once, from a thread: Python's own handler runs only
    when the main thread is back in Python, and a DuckDB statement keeps it out until the statement ends (a
    6.5 s statement interrupted at 0.5 s ended after 6.9 s; ``connection.interrupt()`` from a thread, after
    0.54 s). The signal reaches the thread through ``signal.set_wakeup_fd``, which the C-level handler writes
    to whatever the main thread is doing. Only in the main thread; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    receiver, sender = socket.socketpair()
    sender.setblocking(False)
    previous = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while received := receiver.recv(64):
            if signal.SIGINT in received:
                interrupt()

    watcher = threading.Thread(target=watch, name="ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        sender.close()  # the watcher's recv returns b"": it ends
        watcher.join()
        receiver.close()


def stop_event(signals: tuple[int, ...] = STOP_SIGNALS) -> threading.Event:
    """An event the first of ``signals`` sets, from a thread of its own: the handler may run while the main
    thread holds that very event's lock (inside ``stop.wait(poll)``, between taking it and waiting), and
    ``Event.set`` there would wait for it forever. The thread waits until the main thread lets go."""
    event = threading.Event()
    on_stop_signal(lambda: threading.Thread(target=event.set, name="stop", daemon=True).start(), signals)
    return event


class ProcessGroup:
    """Worker processes that stop together: the first stop signal, or the first worker that fails, sends
    SIGTERM to every live one, so one broken worker never leaves the others writing on their own. The
    collector's and the consumer's ``--workers`` share it."""

    def __init__(self, processes: Sequence[BaseProcess], role: str) -> None:
        self.processes = list(processes)
        self.role = role
        self.stopping = threading.Event()

    def start(self) -> None:
        for process in self.processes:
            process.start()
        on_stop_signal(self.stop)

    def stop(self) -> None:
        self.stopping.set()
        for process in self.processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signal.SIGTERM)

    def alive(self) -> bool:
        return any(process.is_alive() for process in self.processes)

    def stop_on_failure(self) -> None:
        """Stop the group when a worker has exited with an error (and it is not stopping already)."""
        if not self.stopping.is_set() and any(p.exitcode not in (None, 0) for p in self.processes):
            log.error("a %s worker failed; stopping the others", self.role)
            self.stop()

    def wait(self, timeout: float) -> None:
        """Until a worker exits or ``timeout`` seconds pass."""
        connection.wait([p.sentinel for p in self.processes if p.is_alive()], timeout=timeout)

    def failures(self) -> int:
        return sum(1 for process in self.processes if process.exitcode != 0)
