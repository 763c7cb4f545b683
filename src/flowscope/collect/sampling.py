"""Sampling rates: learned from the exports, defaulted or overridden per exporter from a config file.

Where a rate comes from, in order: a config override for the exporter; a rate in the flow
record itself; the rate an options record announced for the record's sampler id; the rate
announced for the whole observation domain (or its only sampler); the config default for the
exporter; the config's global default. Otherwise the rate is unknown and stays null, so
``scaled()`` in SQL counts such flows once and ``sampling_known()`` can find them.

Config file (TOML)::

    [sampling]
    default = 1                 # for every exporter whose exports say nothing
    [sampling.exporters."192.0.2.1"]
    default = 1000              # this exporter says nothing, but samples 1 in 1000
    [sampling.exporters."192.0.2.7"]
    override = 512              # ignore what this exporter announces
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowscope import addresses
from flowscope.collect.templates import DomainKey
from flowscope.errors import FlowscopeError

SOURCES = ("record", "options", "default", "override", "unknown")
"""Where a record's rate comes from: the record (or its datagram's header) itself; options data of its sampler or
domain; the config's default for the exporter, or its global one; the config's override; nowhere."""
RECORD, OPTIONS, DEFAULT, OVERRIDE, UNKNOWN = range(len(SOURCES))
_RATE_MASK = (1 << 36) - 1
"""Rates are 32-bit in every protocol; a larger one is counted as this."""


@dataclass
class SamplingConfig:
    default: int | None = None
    exporter_default: dict[bytes, int] = field(default_factory=dict)
    exporter_override: dict[bytes, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None) -> SamplingConfig:
        if path is None:
            return cls()
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise FlowscopeError(f"sampling config {path}: {exc}") from exc
        return cls.from_mapping(data.get("sampling", {}), str(path))

    @classmethod
    def from_mapping(cls, section: Mapping, origin: str = "sampling config") -> SamplingConfig:
        config = cls(default=_rate(section.get("default"), f"{origin}: sampling.default"))
        for exporter, settings in section.get("exporters", {}).items():
            address = addresses.parse_one(exporter)
            unknown = set(settings) - {"default", "override"}
            if unknown:
                raise FlowscopeError(f"{origin}: exporter {exporter}: unknown keys {sorted(unknown)}")
            for key, target in (("default", config.exporter_default), ("override", config.exporter_override)):
                rate = _rate(settings.get(key), f"{origin}: exporter {exporter} {key}")
                if rate is not None:
                    target[address] = rate
        return config


def _rate(value: object, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise FlowscopeError(f"{where}: a sampling rate is a whole number >= 1, not {value!r}")
    return value


@dataclass
class SamplingTable:
    """Rates announced in options data, per (domain, sampler id); sampler id None = the whole domain."""

    config: SamplingConfig = field(default_factory=SamplingConfig)
    rates: dict[tuple[DomainKey, int | None], int] = field(default_factory=dict)
    changed: bool = False
    applied: Counter[tuple[bytes, str, int]] = field(default_factory=Counter)
    """Records per (exporter, where their rate came from, rate; 0 when unknown) since the process started: the
    sampling sources of the exporters' health."""

    def learn(self, domain: DomainKey, sampler: int | None, rate: int) -> None:
        if rate > 0 and self.rates.get((domain, sampler)) != rate:
            self.rates[(domain, sampler)] = rate
            self.changed = True

    def domain_rate(self, domain: DomainKey) -> int | None:
        """Rate without a sampler id: the domain-wide one, else the domain's only sampler's."""
        if (domain, None) in self.rates:
            return self.rates[(domain, None)]
        candidates = {rate for (d, _), rate in self.rates.items() if d == domain}
        return candidates.pop() if len(candidates) == 1 else None

    def resolve(
        self,
        domains: list[DomainKey],
        domain_index: np.ndarray,
        record_rate: np.ndarray | None,
        sampler_id: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-record rates and validity for records of the given domains (one small loop per distinct key).

        ``domain_index`` maps each record to ``domains``; ``record_rate`` is a rate carried in the
        record (0 = absent) and ``sampler_id`` the record's sampler (None when the template has none).
        """
        n = len(domain_index)
        rate = np.zeros(n, np.uint64)
        known = np.zeros(n, bool)
        if record_rate is not None:
            known = record_rate > 0
            rate = np.where(known, record_rate, 0).astype(np.uint64)
        samplers: list[int | None]
        if sampler_id is None:
            keys, inverse = np.unique(domain_index, return_inverse=True)
            samplers = [None] * len(keys)
        else:
            pairs = np.stack([domain_index.astype(np.int64), sampler_id.astype(np.int64)], axis=1)
            unique_pairs, inverse = np.unique(pairs, axis=0, return_inverse=True)
            keys, samplers = unique_pairs[:, 0], [int(s) for s in unique_pairs[:, 1]]
        inverse = inverse.reshape(-1)
        lookup = np.zeros(len(keys), np.uint64)
        lookup_source = np.full(len(keys), UNKNOWN, np.uint8)
        for i, (key, sampler) in enumerate(zip(keys.tolist(), samplers, strict=True)):
            lookup[i], lookup_source[i] = self._looked_up(domains[key], sampler)
        use_lookup = (lookup_source[inverse] == OVERRIDE) | ~known
        rate = np.where(use_lookup, lookup[inverse], rate)
        source = np.where(use_lookup, lookup_source[inverse], RECORD)
        self._count_applied([domains[key][0] for key in keys.tolist()], inverse, source, rate)
        return rate, source != UNKNOWN

    def _looked_up(self, domain: DomainKey, sampler: int | None) -> tuple[int, int]:
        """The rate for records without their own (or all, for an override) and where it comes from."""
        exporter = domain[0]
        forced = self.config.exporter_override.get(exporter)
        if forced is not None:
            return forced, OVERRIDE
        found = self.rates.get((domain, sampler)) if sampler is not None else None
        if found is None:
            found = self.domain_rate(domain)
        if found is not None:
            return found, OPTIONS
        found = self.config.exporter_default.get(exporter, self.config.default)
        return (found, DEFAULT) if found is not None else (0, UNKNOWN)

    def _count_applied(self, exporters: list[bytes], key: np.ndarray, source: np.ndarray, rate: np.ndarray) -> None:
        """Add the records to ``applied`` by (exporter, source, rate): one small loop per distinct triple."""
        if not len(key):
            return
        packed = (key.astype(np.uint64) << np.uint64(40)) | (source.astype(np.uint64) << np.uint64(36))
        packed |= np.minimum(rate, np.uint64(_RATE_MASK))
        if (packed == packed[0]).all():  # the usual batch: one exporter, one rate from one source
            distinct, counts = packed[:1], np.array([len(packed)])
        else:
            distinct, counts = np.unique(packed, return_counts=True)
        for value, count in zip(distinct.tolist(), counts.tolist(), strict=True):
            where = SOURCES[(value >> 36) & 0xF]
            self.applied[(exporters[value >> 40], where, value & _RATE_MASK)] += count

    def to_json(self) -> list[dict]:
        return [
            {"exporter": addresses.format_one(d[0]), "netflow_version": d[1], "domain": d[2], "sampler": s, "rate": r}
            for (d, s), r in sorted(self.rates.items(), key=lambda item: (item[0][0], item[0][1] or -1))
        ]


def packet_interval_rate(interval: np.ndarray, space: np.ndarray) -> np.ndarray:
    """RFC 5476 systematic count-based sampling: select ``interval`` packets, skip ``space``."""
    interval = interval.astype(np.uint64)
    safe = np.maximum(interval, 1)
    return np.where(interval > 0, (interval + space.astype(np.uint64)) // safe, 0).astype(np.uint64)
