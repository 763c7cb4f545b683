"""Querying the lake: DuckDB connections, views, filters and canned reports above the Parquet store.

``open_lake`` gives a DuckDB connection with the SQL helpers (``helpers``), a view per lake table
(``tables``) and the derived views a query names (``views``: reductions, ``services_by_day``);
``filters`` holds the SQL predicates reports share and ``reports`` the canned report SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowscope.query.views import tables_named, views_named

if TYPE_CHECKING:
    from flowscope.query.connection import open_lake

__all__ = ["open_lake", "tables_named", "views_named"]


def __getattr__(name: str) -> object:
    """``open_lake`` on first use: it brings DuckDB (0.07-0.09 s of start-up), which the view catalogue
    (``views``) does not need: ``materialize`` into SQLite or PostgreSQL computes a reduction view without it."""
    if name == "open_lake":
        from flowscope.query.connection import open_lake

        return open_lake
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
