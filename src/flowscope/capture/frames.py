"""Frames as a file reader hands them to the layer decoder: raw bytes, where each frame is, and its metadata."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frames:
    """Captured frames ``data[offsets[i] : offsets[i] + caplens[i]]`` of one chunk, before decoding."""

    data: np.ndarray  # uint8
    offsets: np.ndarray  # int64
    caplens: np.ndarray  # int64
    wirelens: np.ndarray  # int64
    linktypes: np.ndarray | np.integer  # int64 per frame, or one value for all
    ts_ns: np.ndarray  # int64
    heads: np.ndarray | None = None
    """(n, width) uint8, contiguous, or None: rows ending with each frame's first ``layers.COMMON_WIDTH`` bytes,
    gathered by a reader that read the record headers just before them (saves the decoder a pass over memory)."""

    def __len__(self) -> int:
        return int(self.offsets.shape[0])
