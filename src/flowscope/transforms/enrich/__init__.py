"""Flow enrichment: AS numbers and names, countries (MMDB files), network and interface names, exporter names.

``EnrichConfig.load(path)`` reads the TOML configuration, ``Enricher(config)`` is the batch transform.
``Enricher`` loads on first use: every command that takes ``--enrich`` imports this package, and the transform's
modules (maxminddb, the range tables) were 25-55 ms of each such command's start-up without ``--enrich``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowscope.transforms.enrich.config import EnrichConfig

if TYPE_CHECKING:
    from flowscope.transforms.enrich.transform import Enricher

__all__ = ["EnrichConfig", "Enricher"]


def __getattr__(name: str) -> object:
    if name == "Enricher":
        from flowscope.transforms.enrich.transform import Enricher

        return Enricher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
