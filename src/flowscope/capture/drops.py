"""Packets lost before they reached a capture file, as the capturing side counted them.

Metering only sees what was written; what the kernel or the interface dropped is known only to
the capturer. Two places tell it:

- **tcpdump** prints its libpcap statistics on stderr when it stops ("N packets captured",
  "N packets received by filter", "N packets dropped by kernel", and "N packets dropped by
  interface" when the driver counts any), and on one line when sent SIGUSR1 (Linux's stand-in
  for SIGINFO). ``parse_tcpdump_statistics`` reads the latest of either form.
- **pcapng files** may carry Interface Statistics Blocks (dumpcap writes one per interface at the
  end of each file): ``isb_ifrecv``, ``isb_ifdrop`` (dropped by the interface), ``isb_osdrop``
  (dropped by the OS, i.e. the kernel's capture buffer), ``isb_usrdeliv``. The pcapng reader
  collects the latest block per interface (``pcapng.InterfaceStatistics``); ``FileStatistics``
  turns each file's into increments: the counters are cumulative for one capture run (dumpcap's
  ring files each repeat the run's totals so far), so a file adds its value minus the one before it
  for the same interface, and a value below the previous one starts a new run.

Either way the figures become a ``CaptureDrops``, which goes into the command's summary, the
lake's health records (``flowscope exporters``) and the metrics, beside the collector's socket drops.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_TCPDUMP_COUNTERS = {
    "captured": re.compile(r"(\d+) packets? captured"),
    "received": re.compile(r"(\d+) packets? received by filter"),
    "kernel_drops": re.compile(r"(\d+) packets? dropped by kernel"),
    "interface_drops": re.compile(r"(\d+) packets? dropped by interface"),
}


@dataclass
class CaptureDrops:
    """What a capturer counted; a counter it does not report stays None (unknown, never 0)."""

    source: str
    """Who counted: ``tcpdump -i IFACE``, ``pcapng statistics``."""
    received: int | None = None
    """Packets the capture saw (tcpdump: received by filter; pcapng: isb_ifrecv)."""
    captured: int | None = None
    """Packets handed to the writer (tcpdump: captured; pcapng: isb_usrdeliv)."""
    kernel_drops: int | None = None
    """Dropped by the OS for want of buffer space (tcpdump: dropped by kernel; pcapng: isb_osdrop)."""
    interface_drops: int | None = None
    """Dropped by the interface or its driver (tcpdump: dropped by interface; pcapng: isb_ifdrop)."""

    @property
    def dropped(self) -> int | None:
        """All drops counted, None when the capturer reported none of them."""
        known = [n for n in (self.kernel_drops, self.interface_drops) if n is not None]
        return sum(known) if known else None

    def describe(self) -> str:
        """One line for a command's summary: every counter the capturer gave, with its own words."""
        parts = [
            f"{value:,} {words}"
            for value, words in (
                (self.kernel_drops, "packets dropped by kernel"),
                (self.interface_drops, "packets dropped by interface"),
                (self.received, "received by filter"),
                (self.captured, "captured"),
            )
            if value is not None
        ]
        return f"{self.source}: {', '.join(parts) or 'no statistics'}"

    def as_dict(self) -> dict[str, object]:
        """The JSON form of the health records (counters not reported are left out)."""
        return {key: value for key, value in asdict(self).items() if value is not None}


def parse_tcpdump_statistics(text: str, source: str) -> CaptureDrops | None:
    """The latest statistics tcpdump printed in ``text`` (its stderr), or None when it printed none yet."""
    found = {name: pattern.findall(text) for name, pattern in _TCPDUMP_COUNTERS.items()}
    if not found["captured"]:
        return None
    # tcpdump prints "dropped by interface" only once the driver counted one: until then it is a known 0.
    last = {name: int(values[-1]) for name, values in found.items() if values}
    return CaptureDrops(source, **{"interface_drops": 0, **last})


class FileStatistics:
    """Drops of a sequence of pcapng files, from their Interface Statistics Blocks (see the module docstring)."""

    COUNTERS = ("received", "captured", "kernel_drops", "interface_drops")

    def __init__(self) -> None:
        self.totals = CaptureDrops("pcapng statistics")
        self.files = 0
        """Files that carried statistics."""
        self._last: dict[str, dict[str, int]] = {}

    def add_file(self, per_interface: dict[str, dict[str, int]]) -> None:
        """Account one file's latest counters per interface (``pcapng.InterfaceStatistics.latest``)."""
        if not per_interface:
            return
        self.files += 1
        for interface, counters in per_interface.items():
            before = self._last.get(interface, {})
            for name in self.COUNTERS:
                if name not in counters:
                    continue
                value, previous = counters[name], before.get(name, 0)
                increment = value - previous if value >= previous else value  # below: a new capture run
                setattr(self.totals, name, (getattr(self.totals, name) or 0) + increment)
            self._last[interface] = {**before, **counters}

    @property
    def drops(self) -> CaptureDrops | None:
        return self.totals if self.files else None
