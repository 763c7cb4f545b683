"""Keeping a database table equal to a lake view (SQLite, DuckDB, PostgreSQL)."""
