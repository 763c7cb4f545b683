"""Keyed reductions: collapse records that share a key, with a strategy per field.

``spec`` declares reductions (built-ins and TOML/JSON files); ``apply`` runs one on an Arrow
batch (ingest ``--reduce`` and lake compaction) by sorting rows into groups (``groups``) and
aggregating them with numpy (``aggregate``); ``sql`` turns one into a DuckDB aggregate, which
``flowscope.query.views`` exposes as query views.
"""

from flowscope.reduce.apply import transform
from flowscope.reduce.spec import BUILTIN, Reduction, load

__all__ = ["BUILTIN", "Reduction", "load", "transform"]
