"""Counting what a source had to skip, by reason, so bad input is reported instead of lost."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

BROKEN_STREAM = "compressed stream broken or cut short: rest of file unreadable"
"""The reason counted once per compressed input (a capture, a CSV or JSON lines file) that ends early."""
_UNIT_KEPT = re.compile(r"\(\w+ kept\b")
"""``(packet kept...``, ``(flow kept)``: the whole unit kept; not ``(earlier records kept)``, a part of it."""


@dataclass
class Skips:
    """Skipped units (packets, records, rows, datagrams) per reason, with one example message each.

    A reason that says the unit itself was kept (``"... (packet kept, fraction clamped)"``, ``"(flow kept)"``)
    counts units repaired rather than dropped: the summary says "flagged", not "skipped", so nobody looks for
    data that is there."""

    unit: str = "records"
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, count: int = 1, example: str | None = None) -> None:
        if count <= 0:
            return
        self.counts[reason] += count
        if example is not None and reason not in self.examples:
            self.examples[reason] = example

    def merge(self, other: Skips) -> None:
        self.counts.update(other.counts)
        for reason, example in other.examples.items():
            self.examples.setdefault(reason, example)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """Human-readable summary, most frequent reason first."""
        out = []
        for reason, count in self.counts.most_common():
            example = self.examples.get(reason)
            verb = "flagged" if _UNIT_KEPT.search(reason) else "skipped"
            out.append(f"{count} {self.unit} {verb}: {reason}" + (f" (e.g. {example})" if example else ""))
        return out
