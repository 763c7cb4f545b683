"""Keyed reductions: collapse records that share a key, with a strategy per field.

``spec`` declares reductions (built-ins and TOML/JSON files), ``sql`` turns one into a
DuckDB aggregate, ``apply`` runs it on an Arrow batch (ingest ``--reduce`` and lake
compaction), and ``flowscope.views`` exposes the same SQL as query views.
"""

from flowscope.reduce.apply import transform
from flowscope.reduce.spec import BUILTIN, Reduction, load

__all__ = ["BUILTIN", "Reduction", "load", "transform"]
