"""Reading a fuzz input as a file through a registered reader, exactly as ``flowscope read FILE`` does."""

from __future__ import annotations

from pathlib import Path

from flowscope.errors import FlowscopeError
from flowscope.readers import registry
from flowscope.readers.options import ReadOptions

OPTIONS = ReadOptions()


def read_through(reader: str, path: Path, options: ReadOptions = OPTIONS) -> None:
    """Drain the reader's source over ``path``; a ``FlowscopeError`` is the one clear error allowed."""
    try:
        source = registry.get(reader).open([path], options)
        for _ in source:
            pass
    except FlowscopeError:
        pass
