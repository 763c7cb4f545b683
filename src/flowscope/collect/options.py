"""How recorded flow exports are decoded: the typed options of the ``exports`` reader (``read --as-exports``).

The command line builds an ``ExportOptions`` from ``--sampling-config`` and ``--tunnels``
(``flowscope.cli.options``); a program builds one directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from flowscope.capture.options import TUNNEL_MODES
from flowscope.errors import FlowscopeError

EXPORTS_FORMAT = "exports"


@dataclass(frozen=True)
class ExportOptions:
    sampling_config: Path | None = None
    """TOML file with per-exporter sampling-rate defaults and overrides (``collect.sampling.SamplingConfig``)."""
    tunnels: str = "outer"
    """Packet sections (RFC 7133) read by their outer headers or the innermost carried packet (``TUNNEL_MODES``)."""

    def __post_init__(self) -> None:
        config = self.sampling_config
        if config is not None and not Path(config).is_file():
            problem = "not a file" if Path(config).exists() else "no such file"
            raise FlowscopeError(f"sampling config {config}: {problem}")
        if self.tunnels not in TUNNEL_MODES:
            raise FlowscopeError(f"--tunnels must be one of {', '.join(TUNNEL_MODES)}, not {self.tunnels!r}")

    def shaping(self) -> dict[str, object]:
        """What shapes the flows decoded: the tunnel mode and the sampling config's content (not its path, so an
        edited config is another reading, a moved one is not)."""
        return {"tunnels": self.tunnels, "sampling_config": self._config_digest()}

    def _config_digest(self) -> str | None:
        if self.sampling_config is None:
            return None
        try:
            return hashlib.sha256(Path(self.sampling_config).read_bytes()).hexdigest()
        except OSError as exc:
            raise FlowscopeError(f"sampling config {self.sampling_config}: {exc}") from exc
