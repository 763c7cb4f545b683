"""Input selection options shared by ``flowscope read`` and ``flowscope profile`` (ft-profiler's nfdump reader's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

_OPTIONS = (
    click.option("--exporter", metavar="ADDR", help="Only records from this exporter address (nfdump 'router ip')."),
    click.option("--in-if", type=int, metavar="ID", help="Only records of this input interface id (nfdump 'in if')."),
    click.option("--drop-arp", is_flag=True, help="Drop non-IP records such as ARP."),
    click.option("--max-records", type=click.IntRange(min=1), metavar="N", help="Stop after reading N records."),
)


def selection_options(command: F) -> F:
    """Add the record selection options; they reach a reader's ``open`` as options."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command
