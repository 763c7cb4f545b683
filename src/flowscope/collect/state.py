"""What a NetFlow/IPFIX collector remembers between batches and across restarts.

Templates and the sampling rates learnt from options data are saved together as one JSON
file in the lake directory (``_collector/templates.json``, written atomically), so a
restarted collector decodes data at once instead of waiting for every exporter to resend.
Several worker processes share the file: each save merges, under a lock, what the others
saved for exporters it has not heard from itself.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass, field
from pathlib import Path

from flowscope import addresses
from flowscope.collect.sampling import SamplingConfig, SamplingTable
from flowscope.collect.templates import STATE_FILE, DomainKey, TemplateStore, write_json_atomically
from flowscope.errors import FlowscopeError


@dataclass
class NetflowState:
    templates: TemplateStore = field(default_factory=TemplateStore)
    sampling: SamplingTable = field(default_factory=SamplingTable)
    system_init_ms: dict[DomainKey, int] = field(default_factory=dict)
    """IPFIX systemInitTimeMilliseconds per exporting process (options data): the origin of IEs 21/22."""
    path: Path | None = None
    """Where ``save`` writes; None keeps everything in memory (e.g. ``flowscope read --as-exports``)."""
    tunnels: str = "outer"
    """Which header of a tunnelled packet a flow is keyed by, "outer" or "inner": in packet sections
    (RFC 7133) and in templates that repeat the header elements for each header (SRv6 exporters)."""
    batches: int = 0

    @classmethod
    def open(cls, lake_root: str | Path | None = None, sampling: SamplingConfig | None = None) -> NetflowState:
        """State persisted under ``lake_root`` (loaded if present), with the given sampling config."""
        state = cls(sampling=SamplingTable(config=sampling or SamplingConfig()))
        if lake_root is None:
            return state
        state.path = Path(lake_root) / STATE_FILE
        state._merge_saved(state.path)
        return state

    def _merge_saved(self, path: Path) -> None:
        """Take in what the saved file knows and this process has not learnt itself."""
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text())
            self.templates.load_json(data)
            for item in data.get("sampling_rates", []):
                self.sampling.rates.setdefault(*_rate_entry(item))
            for item in data.get("system_init_ms", []):
                self.system_init_ms.setdefault(_domain(item), int(item["ms"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FlowscopeError(f"{path}: unreadable collector state ({exc}); move it away to start fresh") from exc

    def learn_system_init(self, domain: DomainKey, ms: int) -> None:
        if ms > 0 and self.system_init_ms.get(domain) != ms:
            self.system_init_ms[domain] = ms
            self.sampling.changed = True  # persisted with the rates

    def save(self, *, force: bool = False, lake_root: str | Path | None = None) -> bool:
        """Write templates and learnt rates if they changed since the last save; True if written.

        They go to ``path``, or into the lake at ``lake_root``: a state kept in memory while reading
        (``read --as-exports``) is saved there at the end, merged with what collectors saved.
        """
        path = Path(lake_root) / STATE_FILE if lake_root is not None else self.path
        if path is None or not (force or self.templates.changed or self.sampling.changed):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._merge_saved(path)
            self._write(path)
        self.templates.changed = self.sampling.changed = False
        return True

    def _write(self, path: Path) -> None:
        data = self.templates.to_json()
        data["sampling_rates"] = self.sampling.to_json()
        data["system_init_ms"] = [
            {"exporter": addresses.format_one(d[0]), "netflow_version": d[1], "domain": d[2], "ms": ms}
            for d, ms in sorted(self.system_init_ms.items())
        ]
        write_json_atomically(path, data)


def _domain(item: dict) -> DomainKey:
    return (addresses.parse_one(item["exporter"]), int(item["netflow_version"]), int(item["domain"]))


def _rate_entry(item: dict) -> tuple[tuple[DomainKey, int | None], int]:
    sampler = None if item.get("sampler") is None else int(item["sampler"])
    return (_domain(item), sampler), int(item["rate"])
