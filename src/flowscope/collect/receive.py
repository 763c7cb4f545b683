"""Reading UDP datagrams fast: big socket buffers, recvmmsg(2) batches, the kernel's drop counter.

One ``recvmmsg`` call returns up to ``batch`` datagrams with their source addresses, so
the receive loop makes one system call (and one pass of Python) per batch instead of
per datagram. ctypes releases the GIL during the call, so decoding in another thread
runs meanwhile.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType

import numpy as np

from flowscope.collect.datagrams import Datagrams
from flowscope.errors import FlowscopeError

MSG_DONTWAIT = 0x40
MSG_WAITFORONE = 0x10000
PR_SET_PDEATHSIG = 1
F_SETPIPE_SZ = 1031
SO_RCVBUFFORCE = 33  # Linux: like SO_RCVBUF but may exceed net.core.rmem_max (needs CAP_NET_ADMIN)
RECEIVE_PRIORITY = -10  # nice value a receive process asks for: it must run whenever datagrams wait
# Datagrams a receive process may hold while the decoder catches up. 64 MiB holds about 50k full datagrams
# (1.2 M flows of 24 records): a burst of a second or two at the sender's limit here. Beyond it receiving
# pauses, the socket buffer fills and the kernel drops, counted as socket drops. It was 1 GiB; a 1 M-flow burst
# (about 50 MB of datagrams) peaks at about 520 MiB for the collector's processes either way (bench_collect.py).
QUEUE_BYTES = 64 << 20
FORWARD_BYTES = 4 << 20  # at most this much is merged into one message to the decoder
GATHER_PAUSE = 0.001  # pause after a small batch; at 100k datagrams/s that is 100 datagrams, 3 % of the buffer
PIPE_BYTES = 1 << 20  # pipe capacity asked for (Linux default 64 KiB): fewer wake-ups per forwarded batch
SLOT = 65536  # one slot holds the largest UDP payload, so nothing is ever cut
NAME = 128  # sizeof(struct sockaddr_storage)


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


def _field_view(raw: np.ndarray, offset: int, dtype: type) -> np.ndarray:
    """One field of every mmsghdr in a raw (batch, sizeof) byte view, as a strided numpy array."""
    return raw[:, offset : offset + np.dtype(dtype).itemsize].view(dtype).reshape(-1)


class BatchReceiver:
    """Receives up to ``batch`` datagrams per system call from one socket."""

    def __init__(self, sock: socket.socket, batch: int = 256) -> None:
        if _recvmmsg is None:
            raise FlowscopeError("this system has no recvmmsg(2); the collector needs Linux")
        self.recvmmsg = _recvmmsg
        self.sock = sock
        self.batch = batch
        self.data = np.zeros(batch * SLOT, np.uint8)
        self.names = np.zeros((batch, NAME), np.uint8)
        self.iovecs = (IoVec * batch)()
        self.messages = (MMsgHdr * batch)()
        base = self.data.ctypes.data
        for i in range(batch):  # set up once
            self.iovecs[i].iov_base = base + i * SLOT
            self.iovecs[i].iov_len = SLOT
            header = self.messages[i].msg_hdr
            header.msg_name = self.names.ctypes.data + i * NAME
            header.msg_iov = ctypes.pointer(self.iovecs[i])
            header.msg_iovlen = 1
        raw = np.ctypeslib.as_array(
            (ctypes.c_uint8 * (ctypes.sizeof(MMsgHdr) * batch)).from_address(ctypes.addressof(self.messages))
        ).reshape(batch, ctypes.sizeof(MMsgHdr))
        hdr = MMsgHdr.msg_hdr.offset
        self.namelen = _field_view(raw, hdr + MsgHdr.msg_namelen.offset, np.uint32)
        self.length = _field_view(raw, MMsgHdr.msg_len.offset, np.uint32)

    def receive(self, *, wait: bool = True) -> bytes | None:
        """The next batch, packed (see ``unpack``); None when nothing arrived before the socket's timeout
        or, with ``wait=False``, right now."""
        self.namelen[:] = NAME
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
        lengths = self.length[:count].astype(np.uint32)
        view = self.data.data
        starts = range(0, count * SLOT, SLOT)
        payloads = [view[s : s + n] for s, n in zip(starts, lengths.tolist(), strict=False)]
        times = np.full(count, time.time_ns(), np.int64)
        senders = self.names[:count, :SENDER].tobytes()  # converted by the decoder, off the receive path
        return b"".join([np.int64(count).tobytes(), times.tobytes(), lengths.tobytes(), senders, *payloads])


# Packed batch: count (int64), receive times (int64 each), lengths (uint32 each), sender sockaddrs (28 bytes
# each), payloads. One bytes object per batch crosses the pipe from the receive process: no Python object
# per datagram.
SENDER = 28  # sizeof(struct sockaddr_in6), which also holds a sockaddr_in


def _sections(packed: bytes) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, int]:
    count = int(np.frombuffer(packed, np.int64, 1)[0])
    times = np.frombuffer(packed, np.int64, count, 8)
    lengths = np.frombuffer(packed, np.uint32, count, 8 + 8 * count)
    senders = np.frombuffer(packed, np.uint8, SENDER * count, 8 + 12 * count).reshape(count, SENDER)
    return count, times, lengths, senders, 8 + (12 + SENDER) * count


def packed_count(packed: bytes) -> int:
    """How many datagrams a packed batch holds."""
    return int(np.frombuffer(packed, np.int64, 1)[0])


def merge_packed(batches: list[bytes]) -> bytes:
    """Several packed batches as one."""
    if len(batches) == 1:
        return batches[0]
    parts = [_sections(b) for b in batches]
    count = sum(p[0] for p in parts)
    return b"".join(
        [
            np.int64(count).tobytes(),
            *(p[1].tobytes() for p in parts),
            *(p[2].tobytes() for p in parts),
            *(p[3].tobytes() for p in parts),
            *(memoryview(b)[p[4] :] for b, p in zip(batches, parts, strict=True)),
        ]
    )


def unpack(packed: bytes) -> Datagrams:
    """A packed batch -> Datagrams."""
    _, times, lengths, senders, payload_start = _sections(packed)
    ends = (np.cumsum(lengths, dtype=np.int64) + payload_start).tolist()
    starts = [payload_start, *ends[:-1]]
    payloads = [packed[s:e] for s, e in zip(starts, ends, strict=True)]
    return Datagrams(payloads, sender_addresses(senders), times.copy())


def sender_addresses(names: np.ndarray) -> np.ndarray:
    """struct sockaddr_in / sockaddr_in6 rows -> (n, 16) IPv4-mapped address bytes."""
    family = names[:, 0].astype(np.uint16) | (names[:, 1].astype(np.uint16) << 8)  # host order (little endian)
    out = np.zeros((names.shape[0], 16), np.uint8)
    v4 = family == socket.AF_INET
    out[v4, 10:12] = 0xFF
    out[v4, 12:] = names[v4, 4:8]
    v6 = family == socket.AF_INET6
    out[v6] = names[v6, 8:24]
    return out


LISTEN_SCHEMES = {"netflow": "netflow", "ipfix": "netflow", "sflow": "sflow"}
DEFAULT_PORTS = {"netflow": 2055, "sflow": 6343}


def widen_pipe(conn: Connection) -> None:
    """Ask for a bigger pipe buffer (F_SETPIPE_SZ); the default still works, only with more wake-ups."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(conn.fileno(), F_SETPIPE_SZ, PIPE_BYTES)


def receive_forever(sock: socket.socket, conn: Connection, stop: EventType, memory: int = QUEUE_BYTES) -> None:
    """The body of a receive process: read ``sock`` as fast as datagrams come, forward them over ``conn``.

    A second thread forwards, merging what queued meanwhile (up to 4 MiB) into one message, so the receiving
    thread only ever waits for the socket. Up to ``memory`` bytes may queue here (a burst the decoder
    has not caught up with); beyond that receiving pauses and the kernel buffer, then its drop counter,
    take over. After ``stop`` is set the socket is drained without waiting, everything is forwarded, and
    an empty message says "done".
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
    pending: deque[bytes] = deque()
    state = {"bytes": 0, "done": False}
    changed = threading.Condition()

    def forward() -> None:
        while True:
            with changed:
                while not pending and not state["done"]:
                    changed.wait()
                batches, size = [], 0
                while pending and size < FORWARD_BYTES:  # bounded, so merging never holds the GIL for long
                    batches.append(pending.popleft())
                    size += len(batches[-1])
                state["bytes"] -= size
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
                    state["bytes"] = 0
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
            while state["bytes"] > memory and forwarder.is_alive():
                changed.wait(1.0)
            pending.append(packed)
            state["bytes"] += len(packed)
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
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, np.array([seconds, micros], np.int64).tobytes())
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
