"""Readers turn input files (captures, flow CSVs, nfdump files, recorded exports) into flow sources.

Each input format registers a ``Reader`` in ``flowscope.readers.registry``;
``flowscope read`` picks one by ``--format`` or by sniffing the first bytes. Readers are
opened with a typed ``flowscope.readers.options.ReadOptions``, no command line needed.
"""
