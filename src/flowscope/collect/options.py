"""``flowscope read`` options for recorded flow exports (``--as-exports``, ``--sampling-config``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

EXPORTS_FORMAT = "exports"


def export_options(command: F) -> F:
    """Adds the options; their values reach the reader's ``open(paths, options)``."""
    for option in reversed(
        (
            click.option(
                "--as-exports",
                is_flag=True,
                help="Decode a capture's UDP payloads as NetFlow/IPFIX/sFlow exports instead of metering it.",
            ),
            click.option(
                "--sampling-config",
                type=click.Path(dir_okay=False, exists=True),
                help="TOML file with per-exporter sampling-rate defaults and overrides (see docs/ARCHITECTURE.md).",
            ),
        )
    ):
        command = option(command)
    return command
