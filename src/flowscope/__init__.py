"""flowscope: network flow analytics over one Arrow flow schema."""

__version__ = "0.1.0"
