"""Metering capture files in several processes on one machine (``read --workers N``, ``watch --workers N``).

The files (one rotation stream, in order) are cut into N contiguous runs of about equal bytes,
one boundary per worker (one large classic pcap file: into N byte spans, ``jobs/split.py``, whose guessed
first records must be where the walk of the span before lands: a span's flows are held until then, and a
false guess drops the later spans and meters the rest of the file here, in one run); each worker process
meters its run from an empty cache
(``jobs/runs.meter_run``) and streams its final flows back as they are finished, then its
``RunState`` (one message per part). Each message is an Arrow IPC file the worker writes into a
spool folder in shared memory (``/dev/shm``; a pipe carries only its name), which the parent
memory-maps: no copy on the way in (over a pipe, the worker's encoding buffer, the pipe and the
parent's receive buffer each copied the 0.6 GiB of bench_workers.py's hostile results, and the
fresh memory's page faults cost more than the copies, issue 15). A thread of the parent moves the
names into a bounded queue as they arrive, so a worker does not wait on each of the parent's writes
but does wait when the destination falls behind (``INBOX_MESSAGES``); the parent yields the flows
as they come (the destination's encoding overlaps the metering) and stitches the states in run
order (``jobs/stitch.Stitcher``), which yields the rest. The spool is removed when the read ends,
however it ends; one left by a parent killed outright is removed by the next read.

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
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Collection, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from flowscope.capture.options import MeterOptions
from flowscope.capture.pcap import FILE_HEADER, Span
from flowscope.capture.source import capture_inputs, counter_notes, ignored_note
from flowscope.errors import FlowscopeError
from flowscope.jobs.runs import RunState, meter_run
from flowscope.jobs.split import MIN_SPAN_RECORDS, run_edges, split_file
from flowscope.jobs.stitch import Carry, NotStitchable, Stitcher
from flowscope.memory import keep_freed_memory
from flowscope.scratch import owned_folder

PR_SET_PDEATHSIG = 1
INBOX_MESSAGES = 32
"""Messages the parent holds before the workers wait: about 8 k flows each, 50 MiB at most on high-churn
traffic (unbounded, the parent held 2.5 GiB while encoding a 10 M-packet capture slower than two workers metered)."""
LATER_RUN_COST = 1.2
"""CPU per byte of a run with a head (every run but ``read``'s first) over one without: its head, its larger state
to send and stitch. Measured on bench_workers.py's halves, sequentially: hostile 1.25 (7.35 vs 9.2 CPU s),
realistic 1.13 (1.04 vs 1.18 CPU s)."""
SHARED_MEMORY = Path("/dev/shm")
SPOOL_PREFIX = "flowscope-workers-"
Inbox: TypeAlias = "queue.Queue[tuple[int, str, str, str] | None]"  # (run, kind, part name, file or text), then None
FLOWS, PART, STATE, ERROR, CRASH, DIED = "flows", "part", "state", "error", "crash", "died"


def split_runs(
    files: Sequence[Path], sizes: Sequence[int], workers: int, *, later_cost: float = 1.0
) -> list[list[Path]]:
    """``files`` cut into at most ``workers`` contiguous runs of about equal cost: a byte of run 0 costs 1, one
    of a later run ``later_cost`` (``LATER_RUN_COST``: run 0 of ``read`` keeps no head), so run 0 gets more."""
    count = min(workers, len(files))
    edges = run_edges(sum(sizes), count, later_cost)
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
        runs: Sequence[Sequence[Path | Span]],
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
        self.false_start: int | None = None
        """A span's guessed first record that the walk before it did not land on (the rest was metered here)."""
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
        spool = _make_spool(sum(_input_bytes(item) for run in self.runs for item in run))
        credits = context.Semaphore(INBOX_MESSAGES)  # spool files not yet mapped by the parent, of all workers
        try:
            for index, run in enumerate(self.runs):
                receiver, sender = context.Pipe(duplex=False)
                opens_stream = index == 0 and self.opens_stream
                process = context.Process(
                    target=_work,
                    args=(sender, spool, credits, run, self.options, index, opens_stream, self.mapped, self.done_bytes),
                    daemon=True,
                )
                process.start()
                sender.close()
                processes.append((process, receiver))
            receiving.start()
            yield from self._gather(processes, inbox, credits)
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
            shutil.rmtree(spool, ignore_errors=True)  # mapped tables stay valid: their pages go with the mappings

    def _gather(self, processes: list[tuple[Any, Connection]], inbox: Inbox, credits: Any) -> Iterator[pa.Table]:
        states: dict[int, tuple[RunState, str]] = {}
        parts: dict[int, dict[str, pa.Table]] = {index: {} for index in range(len(processes))}
        held: dict[int, list[pa.Table]] = {}
        """Final flows of runs whose first record is a guess not verified yet (a span of one file)."""
        guessed = [_guessed(run[0]) for run in self.runs]
        verified = self._verified_from(0, guessed)  # runs up to this one start where the true record chain does
        last = len(processes) - 1  # the later runs were dropped: a span's guessed start was false
        rest: Span | None = None  # then the rest of the file, from where the true walk landed
        following = 0
        while (message := inbox.get()) is not None:
            index, kind, name, payload = message
            if index > last:
                continue
            if kind == DIED:
                process = processes[index][0]
                process.join()
                raise FlowscopeError(
                    f"metering worker {index + 1} (pid {process.pid}) ended without its result "
                    f"({_exit_text(process.exitcode)}); nothing of this read was written"
                )
            if kind == ERROR:
                raise FlowscopeError(payload)
            if kind == CRASH:
                raise RuntimeError(payload)
            if kind == FLOWS:
                table = _mapped_table(payload, credits)
                if index <= verified:
                    yield table
                else:
                    held.setdefault(index, []).append(table)
            elif kind == PART:
                parts[index][name] = _mapped_table(payload, credits)
            else:  # the run's state is complete: stitch every run that can be, in order
                states[index] = (RunState.from_parts(parts.pop(index)), payload)
                while following <= last and following in states:
                    state, landing = states.pop(following)
                    self.statistics += state.statistics
                    yield from self.stitcher.add(state)
                    if following < last and _lands_on(landing, self.runs[following + 1][0]):
                        released, verified = verified, max(verified, self._verified_from(following + 1, guessed))
                        for run in range(released + 1, verified + 1):
                            yield from held.pop(run, [])
                    elif following < last:
                        rest = self._drop_after(following, landing, processes)
                        last = following
                    following += 1
        if rest is not None:  # one run in this process: its start is where the true walk landed
            partial = meter_run(
                [rest], self.options, index=last + 1, mapped=self.mapped, progress=self._progress_of(last + 1)
            )
            yield from partial.flows
            yield from self.stitcher.add(partial.state)
        if self.end_of_input:  # else the flows still open stay in ``stitcher.carry`` (watch continues them)
            yield from self.stitcher.finish()

    def _verified_from(self, index: int, guessed: list[bool]) -> int:
        """The last run whose start is known true, given run ``index``'s is: the runs after it up to the next
        guessed start (runs of whole files start with their first file's first record)."""
        while index + 1 < len(guessed) and not guessed[index + 1]:
            index += 1
        return index

    def _drop_after(self, index: int, landing: str, processes: list[tuple[Any, Connection]]) -> Span | None:
        """Run ``index``'s walk did not land on the next span's guessed start: stop the later runs and forget
        their results; the rest of the file from the landing (None: the file ended there, or was damaged)."""
        for process, _ in processes[index + 1 :]:
            process.terminate()
            process.join()
        for later in range(index + 1, len(self.runs)):
            self.done_bytes[later] = 0
        end, landed = _landing(landing)
        following = self.runs[index + 1][0]
        assert isinstance(following, Span)  # only a span's start is a guess
        if not landed:  # the file ended before the next span (a truncated or corrupt record): as for one meter
            return None
        self.false_start = following.start
        return Span(following.path, end)

    def _progress_of(self, index: int) -> Callable[[int], None]:
        def progress(size: int) -> None:
            self.done_bytes[index] += size

        return progress


def _landing(text: str) -> tuple[int, bool]:
    """A worker's report of where its last span's walk ended (``Span.end``, ``Span.landed``)."""
    end, landed = text.split()
    return int(end), landed == "1"


def _guessed(first: Path | Span) -> bool:
    """Does a run starting with ``first`` start at a guessed record start (a span past the file's header)?"""
    return isinstance(first, Span) and first.start != FILE_HEADER


def _lands_on(landing: str, following: Path | Span) -> bool:
    """Does the next run start where this run's walk landed? Only a span's guessed start needs checking."""
    if not isinstance(following, Span) or not _guessed(following):
        return True
    end, landed = _landing(landing)
    return landed and end == following.start


def _input_bytes(item: Path | Span) -> int:
    size = (item.path if isinstance(item, Span) else item).stat().st_size
    if isinstance(item, Span):
        return (size if item.stop is None else item.stop) - item.start
    return size


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
                    kind, name, payload = receiver.recv()
                except (EOFError, OSError):
                    kind, name, payload = DIED, "", ""
                if not _put(inbox, (index, kind, name, payload), stopping):
                    return
                if kind not in (FLOWS, PART):
                    del running[receiver]
    finally:
        _put(inbox, None, stopping)


def _put(inbox: Inbox, message: tuple[int, str, str, str] | None, stopping: threading.Event) -> bool:
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


def _make_spool(input_bytes: int) -> Path:
    """A fresh folder for the workers' results: in shared memory if it has room for as much as the input
    (results in flight are bounded far below that), else in the temporary folder (a small ``/dev/shm``, as
    containers often have). Spools of parents that are gone (killed outright) are removed first."""
    room = shutil.disk_usage(SHARED_MEMORY).free if SHARED_MEMORY.is_dir() else 0
    parent = SHARED_MEMORY if room > input_bytes and os.access(SHARED_MEMORY, os.W_OK) else Path(tempfile.gettempdir())
    return owned_folder(parent, SPOOL_PREFIX)


def _mapped_table(path: str, credits: Any) -> pa.Table:
    """The table of a worker's spool file, memory-mapped (zero-copy); the file's name is removed at once, and
    a worker may write another (the pipe holds a thousand names: without credits, a worker ran 1,000 files
    ahead of a slow destination)."""
    table = pa.ipc.open_stream(pa.memory_map(path)).read_all()
    os.unlink(path)
    credits.release()
    return table


def _work(
    sender: Connection,
    spool: Path,
    credits: Any,
    run: Sequence[Path | Span],
    options: MeterOptions,
    index: int,
    opens_stream: bool,
    mapped: Collection[Path],
    done_bytes: Any,
) -> None:
    """A worker process: meter the run, streaming final flows, then the state; errors as one message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    _end_with_parent()
    written = 0

    def send(kind: str, name: str, table: pa.Table) -> None:
        """Write ``table`` into the spool as an Arrow IPC stream (straight from its buffers) and send its name."""
        nonlocal written
        credits.acquire()  # at most INBOX_MESSAGES files wait for the parent: memory stays bounded
        path = spool / f"{index}-{written}.arrow"
        written += 1
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        sender.send((kind, name, str(path)))

    def emit(table: pa.Table) -> None:
        send(FLOWS, "", table)

    def progress(size: int) -> None:
        done_bytes[index] += size

    try:
        partial = meter_run(
            run, options, index=index, mapped=mapped, emit=emit, progress=progress, opens_stream=opens_stream
        )
        for name, table in partial.state.parts().items():
            send(PART, name, table)
        final = run[-1]  # a span reports where its walk ended: the next span's start must be exactly there
        sender.send((STATE, "", f"{final.end} {int(final.landed)}" if isinstance(final, Span) else ""))
    except FlowscopeError as exc:
        sender.send((ERROR, "", str(exc)))
    except BrokenPipeError:  # the parent stopped listening (it failed or was interrupted)
        os._exit(1)
    except BaseException as exc:  # unexpected: the parent reports it as one line
        last = traceback.extract_tb(exc.__traceback__)[-1]
        sender.send((CRASH, "", f"metering worker {index + 1} failed: {exc!r} at {last.filename}:{last.lineno}"))
    finally:
        sender.close()


def pooled_runs(
    paths: Sequence[Path], workers: int, *, min_span_bytes: int | None = None
) -> list[list[Path | Span]] | None:
    """The runs of a read of ``paths`` by ``workers`` processes: several files in runs of whole files, one
    large classic pcap file in spans (``jobs/split.py``); None when there is nothing to share."""
    files = capture_inputs(paths)[0]
    if len(files) == 1:
        spans = split_file(files[0], workers, later_cost=LATER_RUN_COST, min_bytes=min_span_bytes)
        return None if spans is None else [[span] for span in spans]
    if len(files) < 2:
        return None
    runs: list[list[Path | Span]] = [
        list(run)
        for run in split_runs(files, [path.stat().st_size for path in files], workers, later_cost=LATER_RUN_COST)
    ]
    return runs


class PooledCaptureSource:
    """The ``pcap`` reader with ``workers`` > 1 (``read DIR --workers N``, ``read BIG.pcap --workers N``):
    ``CaptureSource``'s flows, metered in parallel runs (``pooled_runs``) and stitched; a ``NotStitchable``
    input is an error before anything is published."""

    def __init__(
        self, paths: Sequence[Path], options: MeterOptions, runs: Sequence[Sequence[Path | Span]], *, asked: int
    ) -> None:
        keep_freed_memory()
        self.told = (
            [f"--workers {asked}: {len(runs)} processes (a run is at least a whole file, a span of one file at least "
             f"{MIN_SPAN_RECORDS:,} records)"]
            if len(runs) < asked
            else []
        )  # fmt: skip
        files, self.ignored = capture_inputs(paths)
        named = {Path(path) for path in paths if not Path(path).is_dir()}
        self.total = sum(path.stat().st_size for path in files)
        self.workers = Workers(runs, options, mapped=named)
        self.skips = self.workers.stitcher.skips

    def __iter__(self) -> Iterator[pa.Table]:
        try:
            yield from self.workers
        except NotStitchable as exc:
            what = "this file's spans" if isinstance(self.workers.runs[0][0], Span) else "these files"
            raise FlowscopeError(
                f"--workers {len(self.workers.runs)}: {what} cannot be metered apart exactly ({exc}); "
                "read them with --workers 1"
            ) from None

    def progress(self) -> tuple[int, int | None]:
        return self.workers.progress(), self.total

    @property
    def notes(self) -> list[str]:
        stitcher, false_start = self.workers.stitcher, self.workers.false_start
        notes = counter_notes(0, self.workers.options.max_flows, stitcher.unmatched_fragments)
        if false_start is not None:
            notes.append(
                f"the guessed record start at byte {false_start:,} was inside a packet: "
                "the file from there on was metered in one process"
            )
        return self.told + notes + ignored_note(self.ignored)
