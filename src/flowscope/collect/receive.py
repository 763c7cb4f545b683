"""Reading UDP datagrams fast: big socket buffers, recvmmsg(2) batches, the kernel's drop counter.

One ``recvmmsg`` call returns up to ``batch`` datagrams with their source addresses, so
the receive loop makes one system call (and one pass of Python) per batch instead of
per datagram. ctypes releases the GIL during the call, so decoding in another thread
runs meanwhile.

The receive process is spawned (a fresh interpreter) and imports this module alone: it uses the standard
library only, so that process is 15 MiB plus its queue (forked from the collector, it counted the
collector's 60 MiB of imports as its own, and numpy would add 21 MiB).
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import signal
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection

from flowscope.collect.packed import SENDER, merge_packed, pack, packed_count
from flowscope.errors import FlowscopeError

MSG_DONTWAIT = 0x40
MSG_WAITFORONE = 0x10000
PR_SET_PDEATHSIG = 1
F_SETPIPE_SZ = 1031
SO_RCVBUFFORCE = 33  # Linux: like SO_RCVBUF but may exceed net.core.rmem_max (needs CAP_NET_ADMIN)
RECEIVE_PRIORITY = -10  # nice value a receive process asks for: it must run whenever datagrams wait
# Datagrams a receive process holds in memory while the decoder catches up: about 6k full datagrams, 150 k
# flows. A backlog beyond it goes to the spool (``Backlog``); only when that is full too does receiving pause,
# the socket buffer fill and the kernel drop, counted as socket drops. It was 64 MiB in memory (1 GiB before
# issue 17), which a 1 M-flow burst (50 MB of datagrams) filled when decoding lagged (bench_collect.py).
QUEUE_BYTES = 8 << 20
SPOOL_BYTES = 1 << 30
"""What a receive process may spool beyond ``QUEUE_BYTES`` (``Backlog``): about 800 k datagrams, 20 M flows."""
FORWARD_BYTES = 1 << 20  # at most this much is merged into one message to the decoder (about 15 k flows)
GATHER_PAUSE = 0.001  # pause after a small batch; at 100k datagrams/s that is 100 datagrams, 3 % of the buffer
PIPE_BYTES = 1 << 20  # pipe capacity asked for (Linux default 64 KiB): fewer wake-ups per forwarded batch
SLOT = 65536  # one slot holds the largest UDP payload, so nothing is ever cut


# Linux's struct iovec / msghdr / mmsghdr, for recvmmsg(2) here and sendmmsg(2) in the replay benchmark.
class IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint))


MMSG_SIZE = ctypes.sizeof(MMsgHdr)

libc = ctypes.CDLL(None, use_errno=True)
_recvmmsg = getattr(libc, "recvmmsg", None)
if _recvmmsg is not None:
    _recvmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
    _recvmmsg.restype = ctypes.c_int


class BatchReceiver:
    """Receives up to ``batch`` datagrams per system call from one socket."""

    def __init__(self, sock: socket.socket, batch: int = 256) -> None:
        if _recvmmsg is None:
            raise FlowscopeError("this system has no recvmmsg(2); the collector needs Linux")
        self.recvmmsg = _recvmmsg
        self.sock = sock
        self.batch = batch
        # An anonymous mapping: pages count only once a datagram lands in them (about one per slot).
        self.data = mmap.mmap(-1, batch * SLOT)
        self.names = (ctypes.c_uint8 * (batch * SENDER))()
        self.iovecs = (IoVec * batch)()
        self.messages = (MMsgHdr * batch)()
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.data))
        for i in range(batch):  # set up once
            self.iovecs[i].iov_base = base + i * SLOT
            self.iovecs[i].iov_len = SLOT
            header = self.messages[i].msg_hdr
            header.msg_name = ctypes.addressof(self.names) + i * SENDER
            header.msg_iov = ctypes.pointer(self.iovecs[i])
            header.msg_iovlen = 1
        # Every mmsghdr's msg_namelen and msg_len, as strided views of 32-bit words (no copy, no numpy)
        words = memoryview(self.messages).cast("B").cast("I")
        stride = MMSG_SIZE // 4
        namelen = (MMsgHdr.msg_hdr.offset + MsgHdr.msg_namelen.offset) // 4
        self.namelen = words[namelen::stride]
        self.length = words[MMsgHdr.msg_len.offset // 4 :: stride]
        self.full_names = array.array("I", [SENDER]) * batch

    def receive(self, *, wait: bool = True) -> bytes | None:
        """The next batch, packed (``collect/packed.py``); None when nothing arrived before the socket's
        timeout or, with ``wait=False``, right now."""
        self.namelen[:] = self.full_names
        fd = self.sock.fileno()
        base = ctypes.addressof(self.messages)
        count = 0
        # After the first datagram, take whatever else is already queued (without waiting) into the free
        # slots: one packing pass then covers the whole burst, however the kernel split it.
        while count < self.batch:
            flags = (MSG_WAITFORONE if wait else MSG_DONTWAIT) if count == 0 else MSG_DONTWAIT
            got = self.recvmmsg(fd, base + count * MMSG_SIZE, self.batch - count, flags, None)
            if got < 0:
                code = ctypes.get_errno()
                if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    break
                raise OSError(code, os.strerror(code))
            count += got
        if count == 0:
            return None
        lengths = self.length[:count]
        view = memoryview(self.data)
        payloads = [view[s : s + n] for s, n in zip(range(0, count * SLOT, SLOT), lengths.tolist(), strict=False)]
        # the sender sockaddrs are converted by the decoder, off the receive path
        return pack(count, time.time_ns(), lengths.tobytes(), ctypes.string_at(self.names, count * SENDER), payloads)


LISTEN_SCHEMES = {"netflow": "netflow", "ipfix": "netflow", "sflow": "sflow"}
DEFAULT_PORTS = {"netflow": 2055, "sflow": 6343}


def widen_pipe(conn: Connection) -> None:
    """Ask for a bigger pipe buffer (F_SETPIPE_SZ); the default still works, only with more wake-ups."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(conn.fileno(), F_SETPIPE_SZ, PIPE_BYTES)


class StopPipe:
    """The collector's stop request: a byte on a pipe, or its end closing (the collector is gone).

    Polled once per batch (a non-blocking read). A pipe rather than a signal or a multiprocessing Event:
    a signal before the handler is installed would kill the process, and an Event needs multiprocessing's
    resource tracker, one more 12 MiB process.
    """

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.stopped = False

    def is_set(self) -> bool:
        if not self.stopped:
            with contextlib.suppress(BlockingIOError):
                os.read(self.fd, 1)
                self.stopped = True
        return self.stopped

    def set(self) -> None:
        self.stopped = True


class SpoolCounters:
    """What a receive process has spooled (datagrams, bytes; totals), in a memfd it shares with its collector:
    it writes, the collector reads at its housekeeping (``server.Collector``), with no message per update."""

    _LAYOUT = struct.Struct("=qq")

    def __init__(self, fd: int) -> None:
        self.map = mmap.mmap(fd, self._LAYOUT.size)

    @classmethod
    def create(cls) -> tuple[SpoolCounters, int]:
        """New counters at zero and the descriptor to hand the receive process (the caller closes it)."""
        fd = os.memfd_create("flowscope-spool-counters")
        os.ftruncate(fd, cls._LAYOUT.size)
        return cls(fd), fd

    def add(self, datagrams: int, size: int) -> None:
        spooled, spooled_bytes = self._LAYOUT.unpack_from(self.map)
        self._LAYOUT.pack_into(self.map, 0, spooled + datagrams, spooled_bytes + size)

    def read(self) -> tuple[int, int]:
        """(datagrams, bytes) spooled so far."""
        datagrams, size = self._LAYOUT.unpack_from(self.map)
        return datagrams, size


class Backlog:
    """The receive process's queue of packed batches, oldest first: in memory up to ``memory`` bytes, then in
    an unlinked spool file in ``spool_dir`` up to ``spool`` bytes (a file of at most twice that).

    The spool is written and read with pwrite/pread, not mapped: its pages are the kernel's page cache (written
    back to disk under memory pressure), not this process's memory. While it holds anything, new batches go
    there too, so batches leave in the order they came. Not thread-safe: callers hold one lock.
    """

    def __init__(
        self, memory: int, spool: int = 0, spool_dir: str | None = None, counters: SpoolCounters | None = None
    ) -> None:
        self.memory = memory
        self.spool = spool
        self.spool_dir = spool_dir
        self.counters = counters
        self.batches: deque[bytes] = deque()
        self.held = 0  # bytes in ``batches``
        self.fd: int | None = None
        self.write_at = 0
        self.read_at = 0

    @property
    def spooled(self) -> int:
        return self.write_at - self.read_at

    def __bool__(self) -> bool:
        return bool(self.batches) or self.spooled > 0

    def full(self) -> bool:
        """Nothing more fits: receiving must pause (the socket buffer, then the kernel's counted drops, take over)."""
        if self.spool_dir is not None and (self.spooled or self.held >= self.memory):
            # While spooling, memory empties first: the spooled backlog is the bound. The file only starts over
            # once drained, so it may grow to twice that; then receiving waits for the drain. Pausing at the
            # backlog bound rather than the file size interleaves losses with receiving (a single gap of
            # millions of datagrams would read as an exporter restart, not loss: health.JUMP_LIMIT).
            return self.spooled >= self.spool or self.write_at >= 2 * self.spool
        return self.held >= self.memory

    def put(self, packed: bytes) -> None:
        if self.spooled or (self.held >= self.memory and self.spool_dir is not None):
            try:
                self._spill(packed)
                return
            except OSError:  # no spool here (a full disk, no O_TMPFILE): memory only from now on, as without one
                self.spool_dir = None
        self.batches.append(packed)
        self.held += len(packed)

    def _spill(self, packed: bytes) -> None:
        if self.fd is None:
            assert self.spool_dir is not None
            self.fd = os.open(self.spool_dir, os.O_TMPFILE | os.O_RDWR, 0o600)
        record = _LENGTH.pack(len(packed)) + packed
        if os.pwrite(self.fd, record, self.write_at) != len(record):
            raise OSError(errno.ENOSPC, "short write to the spool")
        self.write_at += len(record)
        if self.counters is not None:
            self.counters.add(packed_count(packed), len(packed))

    def take(self, limit: int) -> list[bytes]:
        """The oldest batches, up to ``limit`` bytes (at least one if any)."""
        taken: list[bytes] = []
        size = 0
        while self.batches and size < limit:
            taken.append(self.batches.popleft())
            size += len(taken[-1])
            self.held -= len(taken[-1])
        while not taken and self.fd is not None and self.spooled and size < limit:
            (length,) = _LENGTH.unpack(os.pread(self.fd, _LENGTH.size, self.read_at))
            taken.append(os.pread(self.fd, length, self.read_at + _LENGTH.size))
            size += length
            self.read_at += _LENGTH.size + length
        if self.fd is not None and self.read_at and not self.spooled:  # drained: the file starts over
            os.ftruncate(self.fd, 0)
            self.write_at = self.read_at = 0
        return taken


_LENGTH = struct.Struct("=q")


def main(arguments: list[str]) -> None:
    """A receive process's entry (``server._start_receiver``):
    SOCKET_FD PIPE_FD STOP_FD COUNTERS_FD MEMORY SPOOL [SPOOL_DIR]."""
    sock_fd, conn_fd, stop_fd, counters_fd, memory, spool = (int(a) for a in arguments[:6])
    spool_dir = arguments[6] if spool and len(arguments) > 6 else None
    backlog = Backlog(memory, spool, spool_dir, SpoolCounters(counters_fd))
    receive_forever(socket.socket(fileno=sock_fd), Connection(conn_fd, readable=False), StopPipe(stop_fd), backlog)


def receive_forever(sock: socket.socket, conn: Connection, stop: StopPipe, backlog: Backlog) -> None:
    """The body of a receive process: read ``sock`` as fast as datagrams come, forward them over ``conn``.

    A second thread forwards, merging what queued meanwhile (up to ``FORWARD_BYTES``) into one message, so the
    receiving thread only ever waits for the socket. What the decoder has not caught up with waits in
    ``backlog``; when that is full receiving pauses and the kernel buffer, then its drop counter, take over.
    After ``stop`` is set the socket is drained without waiting, everything is forwarded, and an empty
    message says "done".
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # the parent decides when to stop
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # and if it dies without a word, so does this process
    # Allowed to root only; otherwise the decoder's lower priority must do. Round-robin real-time scheduling
    # lets the reader preempt everything else when datagrams arrive; it blocks in recvmmsg when idle, and the
    # kernel's real-time throttling keeps a share of every second for normal processes.
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    except OSError:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, RECEIVE_PRIORITY)
    receiver = BatchReceiver(sock)
    state = {"done": False, "gone": False}
    changed = threading.Condition()

    def forward() -> None:
        while True:
            with changed:
                while not backlog and not state["done"]:
                    changed.wait()
                batches = backlog.take(FORWARD_BYTES)  # bounded, so merging never holds the GIL for long
                changed.notify_all()
            try:
                if batches:
                    conn.send_bytes(merge_packed(batches))
                elif state["done"]:
                    conn.send_bytes(b"")
                    return
            except OSError:  # the decoder is gone: nothing left to receive for
                stop.set()
                with changed:
                    state["gone"] = True
                    changed.notify_all()
                return

    forwarder = threading.Thread(target=forward, name="forward", daemon=True)
    forwarder.start()
    while True:
        stopping = stop.is_set()
        try:
            packed = receiver.receive(wait=not stopping)
        except OSError:
            time.sleep(0.1)
            continue
        if packed is None:
            if stopping:
                break
            continue
        with changed:
            while backlog.full() and not state["gone"]:
                changed.wait(1.0)
            if not state["gone"]:
                backlog.put(packed)
            changed.notify_all()
        if packed_count(packed) < receiver.batch // 8 and not stopping:
            # A trickle: let datagrams gather for a moment (the socket buffer holds far more than this),
            # so each pass of Python carries many instead of costing a pass per datagram.
            time.sleep(GATHER_PAUSE)
    with changed:
        state["done"] = True
        changed.notify_all()
    forwarder.join()
    conn.close()


@dataclass(frozen=True)
class Listen:
    """One ``--listen PROTOCOL://HOST:PORT``."""

    protocol: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        scheme, sep, rest = text.partition("://")
        protocol = LISTEN_SCHEMES.get(scheme.lower())
        if not sep or protocol is None:
            raise FlowscopeError(f"--listen wants netflow://HOST:PORT or sflow://HOST:PORT, not {text!r}")
        if rest.startswith("["):
            host, _, port = rest[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise FlowscopeError(f"--listen {text!r}: bad port {port!r}")
        return cls(protocol, host or "0.0.0.0", int(port) if port else DEFAULT_PORTS[protocol])

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def open_socket(listen: Listen, *, receive_buffer: int, reuse_port: bool, timeout: float = 0.2) -> socket.socket:
    """A bound UDP socket with the largest receive buffer the kernel grants up to ``receive_buffer``."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, receive_buffer)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        # A receive timeout lets the loop notice a stop request; recvmmsg honours SO_RCVTIMEO.
        seconds = int(timeout)
        micros = int((timeout - seconds) * 1e6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("=qq", seconds, micros))
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        raise FlowscopeError(f"cannot listen on {listen.name}: {exc.strerror or exc}") from exc
    return sock


def granted_buffer(sock: socket.socket) -> int:
    """The receive buffer the kernel actually granted (Linux reports twice the usable size; shown as is)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def kernel_drops(sock: socket.socket) -> int | None:
    """The socket's drop counter from /proc/net/udp{,6} (datagrams lost to a full receive buffer)."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as handle:
                next(handle, None)
                for line in handle:
                    columns = line.split()
                    if len(columns) >= 13 and columns[9] == inode:
                        return int(columns[-1])
        except OSError:
            continue
    return None
