"""Packet captures: pcap/pcapng readers and the vectorised layer decoder that turns frames into PacketBatches.

The readers' exports load on first use: they bring numba (about 0.1 s and 80 MiB of compiler), which commands
that only decode frames (the collector's sFlow samples) or take meter options should not pay for.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "capture_files": "flowscope.capture.files",
    "iter_packet_batches": "flowscope.capture.files",
    "decode_frames": "flowscope.capture.layers",
    "PacketBatch": "flowscope.capture.packets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
