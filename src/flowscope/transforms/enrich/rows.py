"""Reading the enrichment tables users write: CSV with a header (``#`` lines are comments) or TOML."""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowscope.errors import FlowscopeError

Rows = list[dict[str, Any]]


def read_rows(path: Path, what: str, from_toml: Callable[[dict[str, Any]], Rows]) -> Rows:
    """The rows of a CSV or (by its ``.toml`` suffix) TOML file, keys lower-cased; ``what`` names the file in
    errors, ``from_toml`` picks the rows out of the TOML document."""
    try:
        if path.suffix.lower() == ".toml":
            rows = from_toml(tomllib.loads(path.read_text()))
        else:
            with path.open(newline="") as file:
                rows = list(csv.DictReader(line for line in file if not line.lstrip().startswith("#")))
    except OSError as exc:
        raise FlowscopeError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, csv.Error, UnicodeDecodeError) as exc:
        raise FlowscopeError(f"{what} file {path}: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise FlowscopeError(f"{what} file {path}: expected a list of tables (rows), not {type(rows).__name__}")
    return [{str(key).strip().lower(): value for key, value in row.items() if key} for row in rows]


def optional_text(value: Any) -> str | None:
    """A cell as text, None when empty or missing."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None
