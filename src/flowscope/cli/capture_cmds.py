"""``flowscope watch`` and ``flowscope capture``, and the metering options they share with ``read``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from flowscope.capture.meter import MeterSettings

F = TypeVar("F", bound=Callable[..., Any])

_DEFAULTS = MeterSettings()


def meter_options(command: F) -> F:
    """Options for metering packet captures into flows (ignored by formats that are already flows)."""
    decorators = [
        click.option(
            "--active", type=float, help=f"Captures: active timeout in seconds (default {_DEFAULTS.active:g})."
        ),
        click.option("--idle", type=float, help=f"Captures: idle timeout in seconds (default {_DEFAULTS.idle:g})."),
        click.option("--uniflow", is_flag=True, help="Captures: one record per direction (default: biflows)."),
        click.option(
            "--bytes",
            "bytes_mode",
            type=click.Choice(["ip", "link"]),
            help="Captures: count IP-layer (default) or link-layer bytes.",
        ),
        click.option(
            "--tunnels",
            type=click.Choice(["outer", "inner"]),
            help="Captures: meter tunnels (GRE, VXLAN, GTP-U, IP-in-IP, Teredo) by outer (default) or inner headers.",
        ),
        click.option(
            "--max-flows",
            type=click.IntRange(min=1),
            help=f"Captures: flow cache limit; the longest-idle flows are exported early beyond it "
            f"(default {_DEFAULTS.max_flows:,}).",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command
