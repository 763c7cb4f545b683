"""How packets become flows: the typed options of metering (``read`` of captures, ``watch``, ``capture``).

A program (a Kafka consumer, a Spark executor, a web server) opens a capture reader or a
``CaptureWatcher`` with a ``MeterOptions``; the command line builds one from its flags
(``flowscope.cli.options``). Values are checked here, so every front end gets the same errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from flowscope.errors import FlowscopeError

TUNNEL_MODES = ("outer", "inner")
"""Meter tunnelled traffic by its outer headers or by the innermost carried packet (docs/CAPTURE.md)."""


@dataclass(frozen=True)
class MeterOptions:
    """Flow metering settings; the defaults are nfpcapd's."""

    active: float = 300.0
    """A packet starts a new flow this many seconds after its flow's first packet."""
    idle: float = 60.0
    """A packet starts a new flow this many seconds after its flow's last packet."""
    uniflow: bool = False
    """One record per direction (NetFlow style) instead of biflows."""
    link_bytes: bool = False
    """Count the captured frame's wire length instead of the IP length."""
    tunnels: str = "outer"
    """One of ``TUNNEL_MODES``."""
    max_flows: int = 2_000_000
    """Flow cache limit: beyond it the flows idle longest are exported early."""
    fragment_timeout: float = 30.0
    """How long a first fragment's ports are remembered for its later fragments (seconds)."""

    def __post_init__(self) -> None:
        for name in ("active", "idle", "fragment_timeout"):  # 30 and 30.0 are one setting, also to fingerprints
            object.__setattr__(self, name, float(getattr(self, name)))
        if not (self.active > 0 and self.idle > 0):
            raise FlowscopeError("--active and --idle must be positive numbers of seconds")
        if self.tunnels not in TUNNEL_MODES:
            raise FlowscopeError(f"--tunnels must be one of {', '.join(TUNNEL_MODES)}, not {self.tunnels!r}")
        if self.max_flows < 1:
            raise FlowscopeError(f"--max-flows must be at least 1, not {self.max_flows}")
        if not self.fragment_timeout > 0:
            raise FlowscopeError(f"the fragment timeout must be positive seconds, not {self.fragment_timeout}")

    def shaping(self) -> dict[str, object]:
        """The settings that shape the flows metered (all of them; the cache limit decides early exports)."""
        return asdict(self)
