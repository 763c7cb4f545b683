"""Batch transforms of the data path (source -> transforms -> sinks): enrichment and anonymisation.

Each transform is a callable ``pa.Table -> pa.Table`` on flow-schema tables, as ``pipeline.run`` and
``pipeline.Stream`` apply them; keyed reductions live in ``flowscope.reduce``.
"""
