"""Derived views over the lake, registered in every ``open_lake`` connection.

``derived`` defines them (reductions as views, ``services_by_day``) with the key columns
that identify a row, which ``flowscope materialize`` uses to upsert them elsewhere.
"""

from flowscope.views.derived import DERIVED_VIEWS, DerivedView, register_views, view_key

__all__ = ["DERIVED_VIEWS", "DerivedView", "register_views", "view_key"]
