"""The ``flowscope`` executable's first frame, outside ``flowscope.cli`` so that it runs before any import.

Importing the command line (numpy, pyarrow, click) takes 0.3-1 s of start-up on a loaded machine; Ctrl-C in
that window raised ``KeyboardInterrupt`` out of numpy's or pyarrow's import machinery, a 20-line traceback.
Here it ends as Ctrl-C does later on (``cli.common.run_cleanly``): one line, exit 130, nothing written yet.
"""

from __future__ import annotations

import sys


def run() -> None:
    """Import the command line and run it; an interrupt during the import is a quiet exit 130."""
    try:
        from flowscope.cli import run as command_line
    except KeyboardInterrupt:
        sys.stderr.write("interrupted before the command started; nothing was written\n")
        sys.exit(130)
    command_line()
