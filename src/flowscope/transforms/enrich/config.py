"""The enrichment configuration file (``--enrich FILE.toml``)::

    [geoip]
    asn = "/path/asn.mmdb"          # fills src_as/dst_as where 0 or null, and src_as_name/dst_as_name
    country = "/path/country.mmdb"  # src_country/dst_country (ISO 3166 alpha-2)
    overwrite_as = false            # true: the database's AS numbers replace the exporter's
    [networks]
    file = "/path/networks.csv"     # cidr,name,role,site,region,tenant,boundary
    [interfaces]
    file = "/path/interfaces.csv"   # exporter,ifindex,name,description,speed,boundary
    [exporters."192.0.2.1"]
    name = "edge-1"
    group = "paris"

Relative paths are relative to the configuration file. Unknown sections and keys are errors (a typo
would otherwise silently enrich nothing).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowscope.addresses import parse_one
from flowscope.errors import FlowscopeError

_KEYS = {"geoip": {"asn", "country", "overwrite_as"}, "networks": {"file"}, "interfaces": {"file"}, "exporters": None}
_EXPORTER_KEYS = {"name", "group"}


@dataclass(frozen=True)
class EnrichConfig:
    asn: Path | None = None
    country: Path | None = None
    overwrite_as: bool = False
    networks: Path | None = None
    interfaces: Path | None = None
    exporters: dict[bytes, dict[str, str]] = field(default_factory=dict)
    """Exporter address (16 stored bytes) -> ``name`` and/or ``group``."""

    @classmethod
    def load(cls, path: str | Path) -> EnrichConfig:
        path = Path(path)
        try:
            document = tomllib.loads(path.read_text())
        except OSError as exc:
            raise FlowscopeError(f"cannot read enrichment config {path}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise FlowscopeError(f"enrichment config {path}: {exc}") from None
        return cls.from_document(document, path.parent, str(path))

    @classmethod
    def from_document(cls, document: dict[str, Any], base: Path, origin: str = "enrichment config") -> EnrichConfig:
        for section, value in document.items():
            if section not in _KEYS or not isinstance(value, dict):
                raise FlowscopeError(f"{origin}: unknown section [{section}] (known: {', '.join(_KEYS)})")
            allowed = _KEYS[section]
            unknown = set(value) - allowed if allowed is not None else set()
            if unknown:
                raise FlowscopeError(f"{origin}: unknown key {sorted(unknown)[0]!r} in [{section}]")

        def path_of(section: str, key: str) -> Path | None:
            value = document.get(section, {}).get(key)
            if value is None:
                return None
            if not isinstance(value, str):
                raise FlowscopeError(f"{origin}: [{section}] {key} must be a path")
            return base / Path(value).expanduser()

        overwrite = document.get("geoip", {}).get("overwrite_as", False)
        if not isinstance(overwrite, bool):
            raise FlowscopeError(f"{origin}: [geoip] overwrite_as must be true or false")
        config = cls(
            asn=path_of("geoip", "asn"),
            country=path_of("geoip", "country"),
            overwrite_as=overwrite,
            networks=path_of("networks", "file"),
            interfaces=path_of("interfaces", "file"),
            exporters=_exporters(document.get("exporters", {}), origin),
        )
        if config == cls(overwrite_as=overwrite):
            raise FlowscopeError(f"{origin}: configures no enrichment ([geoip], [networks], [interfaces], [exporters])")
        return config

    def shaping(self) -> dict[str, object]:
        """What the configuration does, for the ingest fingerprint (the files by path: a database updated
        in place does not make stored inputs new; ``flowscope enrich`` re-enriches them)."""
        return {
            "files": {name: str(path) for name, path in vars(self).items() if isinstance(path, Path)},
            "overwrite_as": self.overwrite_as,
            "exporters": {key.hex(): fields for key, fields in sorted(self.exporters.items())},
        }


def _exporters(section: dict[str, Any], origin: str) -> dict[bytes, dict[str, str]]:
    exporters = {}
    for address, fields in section.items():
        try:
            key = parse_one(address)
        except FlowscopeError as exc:
            raise FlowscopeError(f"{origin}: [exporters]: {exc}") from None
        if not isinstance(fields, dict) or set(fields) - _EXPORTER_KEYS:
            raise FlowscopeError(f'{origin}: [exporters."{address}"] takes only {", ".join(sorted(_EXPORTER_KEYS))}')
        exporters[key] = {name: str(value) for name, value in fields.items()}
    return exporters
