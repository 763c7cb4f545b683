"""Databases flowscope writes to: connections, DDL rendered from the column catalogue, and wire encodings."""
