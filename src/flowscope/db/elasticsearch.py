"""Elasticsearch: the URL, the index template rendered from the column catalogue, and bulk bodies.

pcapstream indexed flows for search and Kibana with addresses mapped as ``ip`` and the timestamp as
``date``; flowscope does the same for every catalogue column: addresses ``ip`` (as text, IPv4-mapped
addresses as dotted quads), times ``date`` (ISO 8601 with milliseconds, what ``date`` keeps), integers
``long`` (MACs included, as the catalogue's integers), text ``keyword``. Flows go to one index per UTC day
of ``time_received``, ``INDEX-YYYY.MM.DD``, all matched by the template ``INDEX-*``.

A bulk body is built for a whole Arrow table at once: addresses become text with
``addresses.format_text`` and DuckDB renders each row's action line and JSON document into one string
column, whose contiguous data buffer is the NDJSON body (no Python object per row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import duckdb
import numpy as np
import pyarrow as pa

from flowscope import addresses
from flowscope.db.urls import shown_url
from flowscope.errors import FlowscopeError
from flowscope.schema import FLOWS, Role, table_columns

SCHEME = "elasticsearch"
_INDEX_NAME_BAD = set(' "*\\<|,>/?#:')


@dataclass(frozen=True)
class ElasticsearchURL:
    """``elasticsearch://[USER:PASSWORD@]HOST:PORT/INDEX[?name=value...]`` (``elasticsearchs://`` for TLS)."""

    endpoint: str
    index: str
    user: str | None = None
    password: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> ElasticsearchURL:
        parts = urlsplit(url)
        if parts.scheme not in (SCHEME, SCHEME + "s") or not parts.hostname:
            raise FlowscopeError(
                f"not an Elasticsearch URL: {shown_url(url)!r} (expected elasticsearch://HOST:9200/INDEX)"
            )
        index = parts.path.strip("/")
        if not index or index != index.lower() or _INDEX_NAME_BAD & set(index) or index.startswith(("-", "_", "+")):
            rule = 'lowercase, no / * ? " < > | ,'
            raise FlowscopeError(f"bad Elasticsearch index name {index!r} in {shown_url(url)!r} ({rule})")
        scheme = "https" if parts.scheme.endswith("s") else "http"
        return cls(
            endpoint=f"{scheme}://{parts.hostname}:{parts.port or 9200}",
            index=index,
            user=parts.username,
            password=parts.password,
            params=dict(parse_qsl(parts.query, keep_blank_values=True)),
        )


def _mapping_type(c: Any) -> str:
    if c.role is Role.ADDRESS:
        return "ip"
    if c.role is Role.TIME:
        return "date"
    if pa.types.is_string(c.arrow_type):
        return "keyword"
    return "long"


def mappings() -> dict[str, Any]:
    """The index mappings of flow documents (one property per catalogue column; no dynamic fields)."""
    return {
        "dynamic": "strict",
        "properties": {c.name: {"type": _mapping_type(c)} for c in table_columns(FLOWS)},
    }


def template(index: str) -> dict[str, Any]:
    """The index template for ``index``'s daily indices."""
    return {"index_patterns": [f"{index}-*"], "template": {"mappings": mappings()}, "priority": 100}


def bulk_lines(table: pa.Table, index: str) -> pa.Array:
    """One string per row of flows: its bulk action line and its JSON document, each ending in a newline."""
    columns = {}
    for c in table_columns(FLOWS):
        values = table.column(c.name)
        columns[c.name] = addresses.format_text(values) if c.role is Role.ADDRESS else values
    rows = pa.table(columns)
    fields = ", ".join(
        f"'{c.name}': strftime({c.name}, '%Y-%m-%dT%H:%M:%S.%gZ')" if c.role is Role.TIME else f"'{c.name}': {c.name}"
        for c in table_columns(FLOWS)
    )
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("rows", rows)
        # the index name is a parameter: it may hold a quote (Elasticsearch allows one), which must not end SQL text
        action = """'{"index":{"_index":"' || $index || '-' || strftime(time_received, '%Y.%m.%d') || '"}}'"""
        sql = f"SELECT {action} || chr(10) || to_json({{{fields}}}) || chr(10) FROM rows"
        lines = con.sql(sql, params={"index": index}).to_arrow_table()
    finally:
        con.close()
    return lines.column(0).combine_chunks()


def body(lines: pa.Array) -> bytes:
    """The NDJSON body of ``lines``: their data buffer, where the strings lie one after the other."""
    if not len(lines):
        return b""
    wide = pa.types.is_large_string(lines.type)
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64 if wide else np.int32)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2].slice(start, end - start).to_pybytes()
