"""A name -> implementation table filled by modules that register themselves when imported.

Input formats (``readers.registry``) and destinations (``sinks.registry``) are both such tables:
adding one is a new module and one line in the list of modules to import, and a command pays for
importing the implementations only when it looks them up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = modules
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        self._items[item.name] = item
        return item

    def loaded(self) -> dict[str, T]:
        """Every registered item, in registration order, after importing the modules that register them."""
        for module in self.modules:
            importlib.import_module(module)
        return dict(self._items)

    def first(self, accepts: Callable[[T], bool]) -> T | None:
        """The first item ``accepts`` takes, importing the modules in order only until one does: a collector
        writing to the lake does not import the PostgreSQL destination, and with it DuckDB (34 MiB of RSS)."""
        for module in (*self.modules, None):
            found = next((item for item in self._items.values() if accepts(item)), None)
            if found is not None or module is None:
                return found
            importlib.import_module(module)
        return None
