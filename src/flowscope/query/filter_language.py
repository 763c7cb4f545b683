"""The filter language: what a user types to select flows, compiled to parameterised SQL for each store.

    src_addr << 10.0.0.0/8 and dst_port = 443 and proto in (tcp, udp)
    not (addr = 192.0.2.1 or port < 1024) and time_flow_start >= 2024-05-01T00:00:00Z

Grammar (keywords are case-insensitive)::

    filter     := or_expr | (nothing: every flow)
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := NAME ("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") VALUE
                | NAME ["not"] "in" "(" VALUE ("," VALUE)* ")"
                | NAME "<<" VALUE                       (address within a CIDR prefix)
    VALUE      := a word of letters, digits and . : / + - _, or a quoted string ('...' or "...")

Names are the table's columns in the catalogue (``schema.column``), plus ``addr``, ``port`` and ``as``
for "source or destination". The column's role decides how a value is read: addresses and CIDR prefixes
(stored 16-byte form, ``addresses.parse_one`` / ``cidr_bounds``), MACs ``aa:bb:cc:dd:ee:ff``, times as
``--since`` takes them (``times.parse_time``), protocols by name (``tcp``) or number, every other integer
column as a decimal or 0x number checked against the column's type, text as text.

Safety: the SQL is assembled only from the grammar's fixed keywords and operators and from catalogue
column names; every value the user typed becomes a named parameter of the store's driver (``$f0`` for
DuckDB, ``%(f0)s`` for psycopg and clickhouse-driver; ``query.dialects.Dialect.bind`` gives it the store's
type). Named rather than positional parameters because callers embed a filter more than once in one
statement (``top --by host`` scans flows twice; a time series compares two periods) and a named parameter
may repeat. Characters outside the grammar (``;``, ``*``, backslashes, ...) are refused where they stand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from flowscope import addresses
from flowscope.csvflows.values import PROTOCOL_NUMBERS
from flowscope.errors import FlowscopeError
from flowscope.query.dialects import LAKE, Dialect
from flowscope.reduce.sql import quote
from flowscope.schema import FLOWS, Column, Role, column, table_columns
from flowscope.times import parse_time

# "source or destination" names, as flow consoles offer them
EITHER: dict[str, tuple[str, str]] = {
    "addr": ("src_addr", "dst_addr"),
    "port": ("src_port", "dst_port"),
    "as": ("src_as", "dst_as"),
}
_COMPARISONS = ("=", "!=", "<>", "<", "<=", ">", ">=")
_KEYWORDS = ("and", "or", "not", "in")
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<op><<|<=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),])
      | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<word>[A-Za-z0-9_.:/+\-]+)""",
    re.VERBOSE,
)


MAX_DEPTH = 64
"""Nesting of ``not`` and parentheses: the parser recurses per level (found by fuzzing: 1,000 "(" exhausted
Python's recursion limit), and no filter a person writes comes near it."""


class FilterError(FlowscopeError):
    """A filter that does not parse or does not fit its columns; ``position`` is the 0-based offset in ``text``."""

    def __init__(self, reason: str, text: str, position: int) -> None:
        self.reason = reason
        self.text = text
        self.position = position
        super().__init__(f"filter: {reason} (at position {position + 1})\n  {text}\n  {' ' * position}^")


@dataclass(frozen=True)
class Token:
    kind: str  # op, punct, string, word, end
    text: str
    position: int

    @property
    def value(self) -> str:
        """The text a value token stands for: a quoted string without its quotes (doubled quotes undone)."""
        if self.kind == "string":
            quote_char = self.text[0]
            return self.text[1:-1].replace(quote_char * 2, quote_char)
        return self.text

    def keyword(self, word: str) -> bool:
        return self.kind == "word" and self.text.lower() == word


@dataclass
class CompiledFilter:
    """A WHERE condition with its dialect's placeholders and their values (pass both to the store's driver)."""

    sql: str = "1 = 1"
    params: dict[str, Any] = field(default_factory=dict)


def tokenize(text: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            character = text[position]
            if character in "'\"":
                raise FilterError("unterminated quoted string", text, position)
            raise FilterError(f"unexpected character {character!r}", text, position)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def compile_filter(
    text: str | None, table: str = FLOWS, *, prefix: str = "f", dialect: Dialect = LAKE
) -> CompiledFilter:
    """Parse ``text`` into a condition on ``table`` in ``dialect``'s SQL; an empty filter selects every row.

    ``prefix`` names the parameters (``$f0``, ...), so two filters can go into one statement.
    """
    if text is None or not text.strip():
        return CompiledFilter()
    return _Parser(text, table, prefix, dialect).parse()


class _Parser:
    def __init__(self, text: str, table: str, prefix: str, dialect: Dialect) -> None:
        self.text = text
        self.table = table
        self.prefix = prefix
        self.dialect = dialect
        self.count = 0
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0
        self.params: dict[str, Any] = {}

    # -- tokens

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, reason: str, token: Token | None = None) -> FilterError:
        return FilterError(reason, self.text, (token or self.token).position)

    def expect(self, kind: str, text: str, what: str) -> Token:
        if self.token.kind != kind or self.token.text != text:
            raise self.fail(f"expected {what}, found {self.describe(self.token)}")
        return self.advance()

    @staticmethod
    def describe(token: Token) -> str:
        return "the end of the filter" if token.kind == "end" else repr(token.text)

    def name(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count - 1}"

    def param(self, col: Column, value: Any) -> str:
        return self.dialect.bind(self.params, self.name(), col.role, value)

    def address_range(self, expression: str, low: bytes, high: bytes) -> str:
        return self.dialect.address_range(self.params, self.name(), expression, low, high)

    # -- grammar

    def parse(self) -> CompiledFilter:
        sql = self.or_expr()
        if self.token.kind != "end":
            raise self.fail(f"expected 'and', 'or' or the end of the filter, found {self.describe(self.token)}")
        return CompiledFilter(sql, self.params)

    def or_expr(self) -> str:
        parts = [self.and_expr()]
        while self.token.keyword("or"):
            self.advance()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_expr(self) -> str:
        parts = [self.not_expr()]
        while self.token.keyword("and"):
            self.advance()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def not_expr(self) -> str:
        if self.token.keyword("not") or (self.token.kind == "punct" and self.token.text == "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"the filter nests 'not' and '(' more than {MAX_DEPTH} deep")
            if self.advance().text == "(":
                inner = self.or_expr()
                self.expect("punct", ")", "')'")
            else:
                inner = f"(NOT {self.not_expr()})"
            self.depth -= 1
            return inner
        return self.comparison()

    def comparison(self) -> str:
        name_token = self.advance()
        if name_token.kind != "word" or name_token.text.lower() in _KEYWORDS:
            raise self.fail(f"expected a column name, found {self.describe(name_token)}", name_token)
        columns = self.columns(name_token)
        operator = self.token
        negated = False
        if operator.keyword("not"):
            self.advance()
            negated = True
            if not self.token.keyword("in"):
                raise self.fail(f"expected 'in' after 'not', found {self.describe(self.token)}")
        if self.token.keyword("in"):
            self.advance()
            values = self.value_list()
            condition = self.either(columns, lambda c: self.membership(c, values))
        elif operator.kind == "op":
            self.advance()
            value = self.value()
            if operator.text in ("!=", "<>"):  # on addr/port/as: neither side equals
                negated = True
                operator = Token("op", "=", operator.position)
            condition = self.either(columns, lambda c: self.compare(c, operator, value))
        else:
            raise self.fail(f"expected an operator (=, !=, <, <=, >, >=, in, <<), found {self.describe(operator)}")
        return f"(NOT {condition})" if negated else condition

    def value(self) -> Token:
        token = self.advance()
        if token.kind not in ("word", "string"):
            raise self.fail(f"expected a value, found {self.describe(token)}", token)
        return token

    def value_list(self) -> list[Token]:
        self.expect("punct", "(", "'(' after 'in'")
        values = [self.value()]
        while self.token.kind == "punct" and self.token.text == ",":
            self.advance()
            values.append(self.value())
        self.expect("punct", ")", "',' or ')'")
        return values

    # -- names and values

    def columns(self, token: Token) -> tuple[Column, ...]:
        name = token.text.lower()
        names = EITHER.get(name, (name,))
        found = tuple(column(n, self.table) for n in names)
        if any(c is None for c in found):
            known = ", ".join([*EITHER, *(c.name for c in table_columns(self.table))])
            raise self.fail(f"unknown column {token.text!r} (known: {known})", token)
        return tuple(c for c in found if c is not None)

    @staticmethod
    def either(columns: tuple[Column, ...], condition: Callable[[Column], str]) -> str:
        """One condition per column, any of them may hold (``addr``, ``port``, ``as``)."""
        parts = [condition(c) for c in columns]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def compare(self, col: Column, operator: Token, value: Token) -> str:
        name = quote(col.name)
        if operator.text == "<<":
            if col.role is not Role.ADDRESS:
                raise self.fail(f"'<<' needs an address column, {col.name} is not one", operator)
            return self.address_range(name, *self.prefix_bounds(value))
        return f"({name} {operator.text} {self.param(col, self.convert(col, value))})"

    def membership(self, col: Column, values: list[Token]) -> str:
        name = quote(col.name)
        if col.role is Role.ADDRESS:  # addresses and prefixes may mix: 10.0.0.0/8, 192.0.2.1
            parts = []
            for value in values:
                low, high = self.prefix_bounds(value)
                parts.append(f"{name} = {self.param(col, low)}" if low == high else self.address_range(name, low, high))
            return "(" + " OR ".join(parts) + ")"
        # equalities rather than IN: ClickHouse's IN is false, not null, for a null value, so NOT IN would pass it
        return "(" + " OR ".join(f"{name} = {self.param(col, self.convert(col, v))}" for v in values) + ")"

    def prefix_bounds(self, value: Token) -> tuple[bytes, bytes]:
        try:
            return addresses.cidr_bounds(value.value)
        except FlowscopeError:
            raise self.fail(f"not an address or CIDR prefix: {value.value!r}", value) from None

    def convert(self, col: Column, value: Token) -> Any:
        """The parameter value for ``value`` compared with ``col``, read as the column's role says."""
        text = value.value
        try:
            if col.role is Role.ADDRESS:
                return addresses.parse_one(text)
            if col.role is Role.TIME:
                return parse_time(text)
            if col.role is Role.MAC:
                return self.mac(col, value)
            if pa.types.is_integer(col.arrow_type):
                return self.integer(col, value)
        except FilterError:
            raise
        except FlowscopeError as exc:
            raise self.fail(f"{col.name}: {exc}", value) from None
        return text

    def mac(self, col: Column, value: Token) -> int:
        if re.fullmatch(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}", value.value):
            return int(re.sub("[:-]", "", value.value), 16)
        return self.integer(col, value)

    def integer(self, col: Column, value: Token) -> int:
        text = value.value.lower()
        if col.name == "proto" and text in PROTOCOL_NUMBERS:
            return PROTOCOL_NUMBERS[text]
        try:
            number = int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            hint = " or a protocol name (tcp, udp, icmp, ...)" if col.name == "proto" else ""
            raise self.fail(f"{col.name} takes a number{hint}, not {value.value!r}", value) from None
        limit = (1 << col.arrow_type.bit_width) - 1
        if not 0 <= number <= limit:
            raise self.fail(f"{col.name} is between 0 and {limit}, not {number}", value)
        return number
