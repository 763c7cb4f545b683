"""Canned reports: SQL builders over the lake's views, shared by the CLI and the dashboard."""
