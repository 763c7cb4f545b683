"""Scratch folders owned by one process, removed by the next one when their owner is gone.

A folder is removed on every exit its owner sees (errors, Ctrl-C), but not after ``kill -9`` or a crash of the
machine: the workers' result spools (``jobs/pool.py``, in /dev/shm) and the spill files of exact reductions
(``spilling.Spill``, under the lake for roll-ups and materialize) would then stay until someone noticed. Each
folder's name carries its owner's host and process id, and making a folder of the same kind first removes
those whose owner no longer runs on this host (a lake on shared storage may hold another host's live ones).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path


def owned_folder(parent: Path, prefix: str) -> Path:
    """A fresh folder ``<prefix><host>.<pid>-<random>`` in ``parent``, after removing the folders of this
    ``prefix`` whose owner on this host has ended."""
    host = socket.gethostname().replace("-", "_")
    for stale in parent.glob(f"{prefix}{host}.*-*"):
        pid = stale.name[len(prefix) + len(host) + 1 :].split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{host}.{os.getpid()}-", dir=parent))


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
