"""Which nfdump records are read: ft-profiler's selections, the typed options of the ``nfdump`` reader.

Shared by ``flowscope read`` and ``flowscope profile`` (flags in ``flowscope.cli.options``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from flowscope import addresses
from flowscope.errors import FlowscopeError


@dataclass(frozen=True)
class RecordSelection:
    exporter: str | None = None
    """Only records from this exporter address (nfdump's ``router ip``)."""
    in_if: int | None = None
    """Only records of this input interface id (``in if``)."""
    drop_arp: bool = False
    """Drop non-IP records (ARP has no IP addresses)."""
    max_records: int | None = None
    """Stop after this many records are read (before the other selections)."""

    def __post_init__(self) -> None:
        if self.exporter is not None:
            addresses.parse_one(self.exporter)  # a FlowscopeError naming the bad address
        if self.max_records is not None and self.max_records < 1:
            raise FlowscopeError(f"--max-records must be at least 1, not {self.max_records}")

    @property
    def exporter_address(self) -> bytes | None:
        """The exporter as a stored 16-byte address."""
        return None if self.exporter is None else addresses.parse_one(self.exporter)

    def shaping(self) -> dict[str, object]:
        """Every selection shapes the records read; the exporter in stored form, however it was written."""
        address = self.exporter_address
        return {**asdict(self), "exporter": None if address is None else address.hex()}
