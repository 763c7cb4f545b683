"""Canned reports: SQL builders over the lake's views, shared by the CLI and any other front end."""
