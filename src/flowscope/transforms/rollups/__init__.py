"""Multi-resolution roll-ups of the flows table: ``flows_1m``, ``flows_5m``, ``flows_1h`` lake tables.

``spec`` declares them (dimensions, retention; ``LAKE/rollups.toml`` overrides), ``build`` keeps them equal to
a GROUP BY over the raw flows (``flowscope rollup``), ``choose`` picks the coarsest one that can answer a
report exactly.
"""
