"""The ``flowscope`` executable's first frame, outside ``flowscope.cli`` so that it runs before any import.

Importing the command line (numpy, pyarrow, click) takes 0.3-1 s of start-up on a loaded machine; Ctrl-C in
that window raised ``KeyboardInterrupt`` out of numpy's or pyarrow's import machinery, a 20-line traceback.
Here it ends as Ctrl-C does later on (``cli.common.run_cleanly``): one line, exit 130, nothing written yet.
"""

from __future__ import annotations

import io
import sys

from flowscope.errors import FlowscopeError


class _ClosedStdout(io.RawIOBase):
    """Standard output of a process started with it closed (``>&-``), where Python sets ``sys.stdout`` to None
    and the first write failed with an AttributeError: a write or a file descriptor asked of it is one error
    line instead; a command that writes nothing there runs as usual."""

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise FlowscopeError("standard output is closed: nothing can be written to it")

    def fileno(self) -> int:
        raise FlowscopeError("standard output is closed: nothing can be written to it")


def run() -> None:
    """Import the command line and run it; an interrupt during the import is a quiet exit 130."""
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(_ClosedStdout(), write_through=True)
    try:
        from flowscope.cli import run as command_line
    except KeyboardInterrupt:
        sys.stderr.write("interrupted before the command started; nothing was written\n")
        sys.exit(130)
    command_line()
