"""Flow enrichment: AS numbers and names, countries (MMDB files), network and interface names, exporter names.

``EnrichConfig.load(path)`` reads the TOML configuration, ``Enricher(config)`` is the batch transform.
"""

from flowscope.transforms.enrich.config import EnrichConfig
from flowscope.transforms.enrich.transform import Enricher

__all__ = ["EnrichConfig", "Enricher"]
