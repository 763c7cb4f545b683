"""Stop signals: the first one stops, the following ones are ignored (a second one inside the first handler
used to deadlock on threading.Event's lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flowscope.stopping import STOP_SIGNALS, ctrl_c_after, ctrl_c_calls, on_stop_signal, stop_event


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
        assert event.wait(10)
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def test_a_stop_signal_while_the_main_thread_holds_the_events_lock_still_stops() -> None:
    """As when the signal lands inside ``stop.wait(poll)``: setting the event in the handler itself waited for
    the lock the interrupted main thread holds, forever (a watch or consume that never stopped)."""
    code = (
        "import os, signal\n"
        "from flowscope.stopping import stop_event\n"
        "event = stop_event((signal.SIGTERM,))\n"
        "with event._cond:\n"  # what Event.wait holds between taking the lock and waiting
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    for _ in range(1000): pass\n"  # the handler runs here, between two bytecodes
        "print(event.wait(10))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.strip() == "True", done.stderr


def test_ctrl_c_waits_for_the_step_to_end() -> None:
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at start-up (earlier tests change it)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt), ctrl_c_after():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler has run by now; nothing was raised in the step
            done.append("recorded")
            done.append("counted")
        assert done == ["recorded", "counted"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_ctrl_c_stops_a_duckdb_statement_at_once() -> None:
    """DuckDB keeps the main thread, so Python's handler waited for the statement to end (6.5 s of work stopped
    at 6.9 s); ``ctrl_c_calls`` interrupts it from a thread, and restores the wakeup fd after."""
    import duckdb

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    con = duckdb.connect()
    long = "SELECT count(DISTINCT (a.range * 7919 + b.range)) FROM range(10000) a, range(5000) b"  # ~20 s
    try:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises((duckdb.InterruptException, RuntimeError, KeyboardInterrupt)), ctrl_c_calls(con.interrupt):
            con.sql(long).fetchall()
        assert time.monotonic() - started < 10
        assert signal.set_wakeup_fd(-1) == -1  # none left behind
    finally:
        signal.signal(signal.SIGINT, before)
        con.close()
