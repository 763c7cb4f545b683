"""Ctrl-C while the command line is still importing: one line and exit 130, not an import traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest

from flowscope import launch


class InterruptedImport:
    """A finder that behaves as Ctrl-C arriving while ``flowscope.cli`` is being imported."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "flowscope.cli":
            raise KeyboardInterrupt
        return None


def test_an_interrupt_during_start_up_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "flowscope.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as stopped:
        launch.run()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "interrupted before the command started; nothing was written\n"
