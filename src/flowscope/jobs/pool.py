"""Metering capture files in several processes on one machine (``read --workers N``, ``watch --workers N``).

The files (one rotation stream, in order) are cut into N contiguous runs of about equal bytes,
one boundary per worker; each worker process meters its run from an empty cache
(``jobs/runs.meter_run``) and streams its final flows back as they are finished, as Arrow IPC
messages over a pipe, then its ``RunState`` (one message per part). A thread of the parent moves the
messages into a bounded queue as they arrive, so a worker does not wait on each of the parent's writes
(a pipe holds 64 KiB: without the thread the workers ran in lockstep with them) but does wait when the
destination falls behind (``INBOX_MESSAGES``); the parent yields the flows as they come (the
destination's encoding overlaps the metering) and stitches the states in run order
(``jobs/stitch.Stitcher``), which yields the rest.

Processes are forked: a fork shares the parent's imported modules and costs about 0.04 s for two
workers, where ``forkserver`` (1.7 s) and ``spawn`` (2.1 s) start fresh interpreters that import
numpy, pyarrow and flowscope again (measured on this 2-core machine under load, issue 15). A
worker only meters and writes to its own pipe: it takes none of the locks the parent's threads
(ledger digests, the progress bar) may hold.

Failures: an error in a worker (an unreadable file) is re-raised in the parent as the same
one-line ``FlowscopeError``; a worker that dies (killed, out of memory) is an error naming it;
Ctrl-C stops every worker. Each is raised inside ``pipeline.run``, which aborts the destination:
nothing of the read is published.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Collection, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from flowscope.capture.options import MeterOptions
from flowscope.capture.source import capture_inputs, counter_notes, ignored_note
from flowscope.errors import FlowscopeError
from flowscope.jobs.runs import RunState, ipc_buffer, meter_run, read_ipc
from flowscope.jobs.stitch import Carry, NotStitchable, Stitcher
from flowscope.memory import keep_freed_memory

PR_SET_PDEATHSIG = 1
INBOX_MESSAGES = 32
LATER_RUN_COST = 1.2
"""CPU per byte of a run with a head (every run but ``read``'s first) over one without: its head, its larger state
to send and stitch. Measured on bench_workers.py's halves, sequentially: hostile 1.25 (7.35 vs 9.2 CPU s),
realistic 1.13 (1.04 vs 1.18 CPU s)."""
PART_ROWS = 1 << 16
"""Rows per message of a run's state: serialising a whole part at once took as much memory again as the part."""
"""Messages the parent holds before the workers wait: about 8 k flows each, 50 MiB at most on high-churn
traffic (unbounded, the parent held 2.5 GiB while encoding a 10 M-packet capture slower than two workers metered)."""
Inbox: TypeAlias = "queue.Queue[tuple[int, str, str, bytes] | None]"  # (run, kind, part name, payload), then None
FLOWS, PART, STATE, ERROR, CRASH, DIED = "flows", "part", "state", "error", "crash", "died"


def split_runs(
    files: Sequence[Path], sizes: Sequence[int], workers: int, *, later_cost: float = 1.0
) -> list[list[Path]]:
    """``files`` cut into at most ``workers`` contiguous runs of about equal cost: a byte of run 0 costs 1, one
    of a later run ``later_cost`` (``LATER_RUN_COST``: run 0 of ``read`` keeps no head), so run 0 gets more."""
    total = sum(sizes)
    count = min(workers, len(files))
    first = total / (1 + (count - 1) / later_cost)  # run 0's bytes; the later runs share the rest equally
    edges = np.concatenate([[first], first + np.arange(1, count) * (total - first) / max(count - 1, 1)])
    runs: list[list[Path]] = [[] for _ in range(count)]
    done = 0
    for path, size in zip(files, sizes, strict=True):
        # the run whose share of the bytes the middle of this file falls in
        at = min(count - 1, int(np.searchsorted(edges, done + size / 2, side="right")))
        runs[at].append(path)
        done += size
    return [run for run in runs if run]


class Workers:
    """Runs metered in forked processes; iterate for the flow tables, stitched, in no particular order
    (with ``end_of_input``, the flows still open at the end too, as one meter exports them)."""

    def __init__(
        self,
        runs: list[list[Path]],
        options: MeterOptions,
        *,
        carry: Carry | None = None,
        mapped: Collection[Path] = (),
        end_of_input: bool = True,
    ) -> None:
        self.runs = runs
        self.end_of_input = end_of_input
        self.options = options
        self.stitcher = Stitcher(options, carry)
        self.opens_stream = not len(self.stitcher.carry.rows)
        """No flow is open before run 0: it keeps no head (``meter_run``'s ``opens_stream``)."""
        self.mapped = mapped
        self.done_bytes = multiprocessing.get_context("fork").Array("q", len(runs), lock=False)
        self.statistics: list[dict[str, dict[str, int]]] = []
        """Per file of the runs stitched so far, in order: its pcapng interface statistics (``RunState``)."""

    def progress(self) -> int:
        return int(sum(self.done_bytes))

    def __iter__(self) -> Iterator[pa.Table]:
        context = multiprocessing.get_context("fork")
        sys.stdout.flush()
        sys.stderr.flush()
        processes: list[tuple[Any, Connection]] = []
        inbox: Inbox = queue.Queue(INBOX_MESSAGES)
        stopping = threading.Event()
        receiving = threading.Thread(
            target=_receive, args=(processes, inbox, stopping), name="workers-inbox", daemon=True
        )
        try:
            for index, run in enumerate(self.runs):
                receiver, sender = context.Pipe(duplex=False)
                opens_stream = index == 0 and self.opens_stream
                process = context.Process(
                    target=_work,
                    args=(sender, run, self.options, index, opens_stream, self.mapped, self.done_bytes),
                    daemon=True,
                )
                process.start()
                sender.close()
                processes.append((process, receiver))
            receiving.start()
            yield from self._gather(processes, inbox)
        finally:
            stopping.set()
            for process, _ in processes:
                if process.is_alive():
                    process.terminate()
                process.join()
            if receiving.is_alive():
                receiving.join()
            for _, receiver in processes:
                receiver.close()

    def _gather(self, processes: list[tuple[Any, Connection]], inbox: Inbox) -> Iterator[pa.Table]:
        states: dict[int, RunState] = {}
        parts: dict[int, dict[str, list[pa.Table]]] = {index: {} for index in range(len(processes))}
        following = 0
        while (message := inbox.get()) is not None:
            index, kind, name, payload = message
            if kind == DIED:
                process = processes[index][0]
                process.join()
                raise FlowscopeError(
                    f"metering worker {index + 1} (pid {process.pid}) ended without its result "
                    f"({_exit_text(process.exitcode)}); nothing of this read was written"
                )
            if kind == ERROR:
                raise FlowscopeError(payload.decode())
            if kind == CRASH:
                raise RuntimeError(payload.decode())
            if kind == FLOWS:
                yield read_ipc(payload)
            elif kind == PART:
                parts[index].setdefault(name, []).append(read_ipc(payload))
            else:  # the run's state is complete: stitch every run that can be, in order
                states[index] = RunState.from_parts(
                    {name: pa.concat_tables(pieces) for name, pieces in parts.pop(index).items()}
                )
                while following in states:
                    state = states.pop(following)
                    self.statistics += state.statistics
                    yield from self.stitcher.add(state)
                    following += 1
        if self.end_of_input:  # else the flows still open stay in ``stitcher.carry`` (watch continues them)
            yield from self.stitcher.finish()


def _receive(processes: list[tuple[Any, Connection]], inbox: Inbox, stopping: threading.Event) -> None:
    """A thread of the parent: move every worker's messages into ``inbox`` as they arrive, so a worker never
    waits while the parent encodes flows (a pipe holds 64 KiB; reading releases the GIL), then ``None``."""
    running = {receiver: index for index, (_, receiver) in enumerate(processes)}
    try:
        while running:
            for receiver in wait(list(running)):
                assert isinstance(receiver, Connection)
                index = running[receiver]
                try:
                    kind, name = receiver.recv()
                    payload = receiver.recv_bytes()
                except (EOFError, OSError):
                    kind, name, payload = DIED, "", b""
                if not _put(inbox, (index, kind, name, payload), stopping):
                    return
                if kind not in (FLOWS, PART):
                    del running[receiver]
    finally:
        _put(inbox, None, stopping)


def _put(inbox: Inbox, message: tuple[int, str, str, bytes] | None, stopping: threading.Event) -> bool:
    """Queue ``message``, waiting while the inbox is full (the workers then wait on their pipes: memory stays
    bounded when the destination is slower than the metering); False once the parent stops listening."""
    while not stopping.is_set():
        try:
            inbox.put(message, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _end_with_parent() -> None:
    """Linux: SIGTERM this worker when the parent dies (killed before it could stop its workers)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _work(
    sender: Connection,
    run: list[Path],
    options: MeterOptions,
    index: int,
    opens_stream: bool,
    mapped: Collection[Path],
    done_bytes: Any,
) -> None:
    """A worker process: meter the run, streaming final flows, then the state; errors as one message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    _end_with_parent()

    def send(kind: str, name: str, payload: pa.Buffer | bytes) -> None:
        sender.send((kind, name))
        sender.send_bytes(payload)

    def emit(table: pa.Table) -> None:
        send(FLOWS, "", ipc_buffer(table))

    def progress(size: int) -> None:
        done_bytes[index] += size

    try:
        partial = meter_run(
            run, options, index=index, mapped=mapped, emit=emit, progress=progress, opens_stream=opens_stream
        )
        for name, table in partial.state.parts().items():
            for start in range(0, max(table.num_rows, 1), PART_ROWS):  # small messages: no copy of a whole part
                send(PART, name, ipc_buffer(table.slice(start, PART_ROWS)))
        send(STATE, "", b"")
    except FlowscopeError as exc:
        send(ERROR, "", str(exc).encode())
    except BrokenPipeError:  # the parent stopped listening (it failed or was interrupted)
        os._exit(1)
    except BaseException as exc:  # unexpected: the parent reports it as one line
        last = traceback.extract_tb(exc.__traceback__)[-1]
        send(CRASH, "", f"metering worker {index + 1} failed: {exc!r} at {last.filename}:{last.lineno}".encode())
    finally:
        sender.close()


class PooledCaptureSource:
    """The ``pcap`` reader with ``workers`` > 1 (``read DIR --workers N``): ``CaptureSource``'s flows, metered
    in parallel runs and stitched; a ``NotStitchable`` input is an error before anything is published."""

    def __init__(self, paths: Sequence[Path], options: MeterOptions, workers: int) -> None:
        keep_freed_memory()
        files, self.ignored = capture_inputs(paths)
        named = {Path(path) for path in paths if not Path(path).is_dir()}
        sizes = [path.stat().st_size for path in files]
        self.total = sum(sizes)
        self.workers = Workers(split_runs(files, sizes, workers, later_cost=LATER_RUN_COST), options, mapped=named)
        self.skips = self.workers.stitcher.skips

    def __iter__(self) -> Iterator[pa.Table]:
        try:
            yield from self.workers
        except NotStitchable as exc:
            raise FlowscopeError(
                f"--workers {len(self.workers.runs)}: these files cannot be metered apart exactly ({exc}); "
                "read them with --workers 1"
            ) from None

    def progress(self) -> tuple[int, int | None]:
        return self.workers.progress(), self.total

    @property
    def notes(self) -> list[str]:
        stitcher = self.workers.stitcher
        return counter_notes(0, self.workers.options.max_flows, stitcher.unmatched_fragments) + ignored_note(
            self.ignored
        )
