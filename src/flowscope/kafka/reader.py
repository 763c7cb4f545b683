"""``flowscope read`` for GoFlow2 ``bin`` files: length-delimited ``FlowMessage`` s, as GoFlow2 writes them with
``-format=bin -transport=file`` (its file transport adds a ``\\n`` after each message unless run with
``-transport.file.sep=""``: both are read), and as a Kafka topic's messages would be saved back to back.

Messages can only be found by following their length prefixes from the start. The file is read in blocks
and each block's messages are found by the capture reader's chain walk (``capture.chain``: lanes started at
positions that look like a message, walked in lockstep, a lane kept only where the walk before it lands on
its start), so there is no Python step per message; the messages are then decoded by the Kafka codec
(``kafka.goflow2``). A length that cannot be (a prefix that is no varint, a message over 64 KiB, a missing
separator) ends the file's chain: its remaining bytes are one counted skip, since no later boundary can be
trusted; a last message cut short is a counted skip too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from flowscope.capture import chain
from flowscope.diagnostics import Skips
from flowscope.kafka.goflow2 import Frames, decode
from flowscope.kafka.wire import WireBuffer
from flowscope.readers.options import ReadOptions
from flowscope.readers.registry import Reader, register

BLOCK_BYTES = 16 << 20
MAX_MESSAGE = 64 << 10
"""No FlowMessage comes near it (a full IPv6 message is under 200 bytes); a longer length is not a prefix."""
SEPARATOR = 0x0A
_PROBE_MESSAGES = 16
PROBE_BYTES = 1 << 16


@dataclass(frozen=True)
class Framing:
    separated: bool
    """A ``\\n`` follows every message (GoFlow2's file transport by default)."""
    first_tag: int
    """The byte each message starts with (its first field's tag): what a lane start is recognised by."""


class _Messages:
    """Where messages are in one buffer, as ``capture.chain.walk`` asks."""

    def __init__(self, buffer: WireBuffer, framing: Framing) -> None:
        self.buffer = buffer
        self.separated = framing.separated
        self.first_tag = framing.first_tag

    def lengths(self, pos: np.ndarray) -> np.ndarray:
        """Each message's total length (prefix, body, separator); -1 where none can start."""
        prefix = self.buffer.varints(pos)
        body = np.minimum(prefix.value, np.uint64(MAX_MESSAGE + 1)).astype(np.int64)
        total = prefix.length + body + self.separated
        bad = ~prefix.ok | (body > MAX_MESSAGE)
        if self.separated:
            after = np.minimum(pos + total - 1, self.buffer.size)
            bad |= (self.buffer.data[after] != SEPARATOR) & (pos + total <= self.buffer.size)
        return np.where(bad, -1, total)

    def candidates(self, first: int, step: int, count: int, window: int) -> np.ndarray:
        """Positions in the search windows that look like a message: a one- or two-byte length followed by the
        tag the first message starts with (after a separator, when the file has them)."""
        data = self.buffer.data
        count = min(count, (self.buffer.size - window - first - 3) // step + 1)
        if count <= 0:
            return np.zeros(0, np.int64)

        def at(offset: int) -> np.ndarray:
            return np.lib.stride_tricks.as_strided(data[first + offset :], (count, window), (step, 1), writeable=False)

        byte0, byte1, byte2 = at(0), at(1), at(2)
        short = (byte0 > 0) & (byte0 < 0x80) & (byte1 == self.first_tag)
        long = (byte0 >= 0x80) & (byte1 > 0) & (byte1 < 0x80) & (byte2 == self.first_tag)
        hits = short | long
        if self.separated:
            hits &= at(-1) == SEPARATOR
        return chain.window_positions(hits, first, step)

    def decode(self, starts: np.ndarray, skips: Skips) -> pa.Table:
        prefixes = self.buffer.varints(starts)
        bodies = starts + prefixes.length
        return decode(Frames(self.buffer.data, bodies, bodies + prefixes.value.astype(np.int64)), skips)


def framing(head: bytes, *, sniffing: bool = False) -> Framing | None:
    """How a file lays out its messages, from its first ones (followed one by one: a few at most): with or
    without separators, whichever frames them up to the end of ``head`` (a last one may be cut) and decodes
    them without a fault (``sniffing``: and with receive times, which GoFlow2 always sets); None when neither
    does."""
    buffer = WireBuffer(head)
    for separated in (False, True):
        starts: list[int] = []
        pos = 0
        while pos < buffer.size and len(starts) < _PROBE_MESSAGES:
            prefix = buffer.varints(np.array([pos]))
            total = int(prefix.length[0]) + int(prefix.value[0]) + separated
            if not prefix.ok[0] or prefix.value[0] > MAX_MESSAGE:
                break
            if pos + total > buffer.size:
                pos = buffer.size  # cut by the end of the head: fine
                break
            if separated and buffer.data[pos + total - 1] != SEPARATOR:
                break
            starts.append(pos)
            pos += total
        if len(starts) < 2 or (pos < buffer.size and len(starts) < _PROBE_MESSAGES):
            continue
        first_tag = int(buffer.data[starts[0] + int(buffer.varints(np.array([0])).length[0])])
        candidate = Framing(separated, first_tag)
        skips = Skips(unit="messages")
        rows = _Messages(buffer, candidate).decode(np.array(starts, np.int64), skips)
        timed = rows.column("time_received").null_count < rows.num_rows
        if not skips.total and (timed or not sniffing):
            return candidate
    return None


class GoFlow2FileSource:
    """The flows of GoFlow2 ``bin`` files, one after another; framing and decoding faults counted in ``skips``."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.skips = Skips(unit="messages")
        self._done = 0
        self._total = sum(path.stat().st_size for path in self.paths)

    def progress(self) -> tuple[int, int | None]:
        return self._done, self._total

    def __iter__(self) -> Iterator[pa.Table]:
        for path in self.paths:
            yield from self._file(path)

    def _file(self, path: Path) -> Iterator[pa.Table]:
        with open(path, "rb") as handle:
            carry = b""
            found_framing: Framing | None = None
            mean = float(chain.DEFAULT_MEAN_RECORD)
            while True:
                block = handle.read(BLOCK_BYTES)
                data = carry + block
                if not data:
                    return
                found_framing = found_framing or framing(data[:PROBE_BYTES])
                if found_framing is None:
                    self.skips.add("not GoFlow2 length-delimited messages", 1, path.name)
                    return
                messages = _Messages(WireBuffer(data), found_framing)
                walked = chain.walk(len(data), 1, messages.lengths, messages.candidates, 0, mean)
                mean = walked.mean_record(0)
                if walked.offsets.size:
                    yield messages.decode(walked.offsets, self.skips)
                self._done += len(block)
                carry = data[walked.end :]
                if walked.corrupt or not block:
                    if carry:
                        reason = "bytes that are no message (framing lost)" if walked.corrupt else "message cut short"
                        self.skips.add(reason, 1, f"{path.name}: {len(carry):,} bytes at the end")
                    return


def sniff(path: Path, head: bytes) -> bool:
    """The first bytes frame as FlowMessages that decode cleanly and carry receive times."""
    return not head.startswith(b"{") and framing(head, sniffing=True) is not None


def open_source(paths: Sequence[Path], options: ReadOptions) -> GoFlow2FileSource:
    return GoFlow2FileSource(paths)


register(
    Reader(
        name="goflow2",
        description="GoFlow2 bin files: length-delimited flowpb.FlowMessage (with or without -transport.file.sep)",
        sniff=sniff,
        open=open_source,
        shaping=lambda options: {},
    )
)
