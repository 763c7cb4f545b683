"""Synthetic traffic for ``flowscope demo`` and the benchmarks."""
