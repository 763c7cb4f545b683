"""Querying the lake: DuckDB connections, views, filters and canned reports above the Parquet store.

``open_lake`` gives a DuckDB connection with the SQL helpers (``helpers``), a view per lake table
(``tables``) and the derived views a query names (``views``: reductions, ``services_by_day``);
``filters`` holds the SQL predicates reports share and ``reports`` the canned report SQL.
"""

from flowscope.query.connection import open_lake
from flowscope.query.views import tables_named, views_named

__all__ = ["open_lake", "tables_named", "views_named"]
