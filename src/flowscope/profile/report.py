"""A profile's character, for comparing two profiles: protocol mix, ports, packet sizes, durations, start gaps.

``summarize`` computes the numbers once (numpy); ``render_text`` prints them and
``plot`` draws the distributions to a PNG (matplotlib, an optional extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowscope.errors import FlowscopeError
from flowscope.profile.merge import Profile

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
_PROTO_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 47: "GRE", 50: "ESP", 132: "SCTP"}


@dataclass
class Summary:
    flows: int
    packets: int
    bytes: int
    protocols: list[tuple[str, int, int, int]]  # (name, flows, packets, bytes), most flows first
    ports: list[tuple[int, int]]  # (port, flows) of the most used service ports
    packet_size: np.ndarray  # bytes per packet of each flow (both directions)
    duration_ms: np.ndarray
    start_gap_ms: np.ndarray  # time between consecutive flow starts
    biflow_share: float


def _service_ports(profile: Profile, top: int) -> list[tuple[int, int]]:
    """The lower port of each TCP/UDP flow is its likely service port; the most frequent ones."""
    ported = profile.proto.astype(np.int64)
    mask = (ported == 6) | (ported == 17)
    service = np.minimum(profile.src_port, profile.dst_port)[mask].astype(np.int64)
    counts = np.bincount(service, minlength=65536)
    order = np.argsort(counts)[::-1][:top]
    return [(int(p), int(counts[p])) for p in order if counts[p]]


def summarize(profile: Profile, *, top_ports: int = 10) -> Summary:
    packets = profile.packets + profile.packets_rev
    octets = profile.bytes + profile.bytes_rev
    l3 = np.where(profile.ipv6, 6, 4)
    groups = l3.astype(np.int64) * 256 + profile.proto
    protocols = []
    for group in np.unique(groups):
        mask = groups == group
        name = f"IPv{group // 256} {_PROTO_NAMES.get(int(group % 256), str(int(group % 256)))}"
        protocols.append((name, int(mask.sum()), int(packets[mask].sum()), int(octets[mask].sum())))
    protocols.sort(key=lambda row: -row[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.where(packets > 0, octets / np.maximum(packets, 1), 0.0)
    starts = np.sort(profile.start)
    return Summary(
        flows=len(profile),
        packets=int(packets.sum()),
        bytes=int(octets.sum()),
        protocols=protocols,
        ports=_service_ports(profile, top_ports),
        packet_size=size,
        duration_ms=(profile.end - profile.start).astype(np.float64),
        start_gap_ms=np.diff(starts).astype(np.float64),
        biflow_share=float((profile.packets_rev > 0).mean()) if len(profile) else 0.0,
    )


def _quantiles(values: np.ndarray) -> str:
    if not len(values):
        return "(none)"
    points = np.quantile(values, QUANTILES)
    labels = ("min", "p25", "p50", "p75", "p90", "p99", "max")
    return "  ".join(f"{label} {value:,.1f}" for label, value in zip(labels, points, strict=True))


def render_text(summary: Summary) -> str:
    lines = [
        f"flows {summary.flows:,}   packets {summary.packets:,}   bytes {summary.bytes:,}   "
        f"biflows {summary.biflow_share:.1%}",
        "",
        "protocol mix (flows / packets / bytes):",
    ]
    total = max(summary.flows, 1)
    for name, flows, packets, octets in summary.protocols:
        lines.append(f"  {name:<12} {flows:>10,} ({flows / total:6.1%})  {packets:>14,}  {octets:>16,}")
    lines.append("")
    lines.append("top service ports (TCP/UDP, lower port of the pair):")
    for port, flows in summary.ports:
        lines.append(f"  {port:>5}  {flows:>10,} ({flows / total:6.1%})")
    lines += [
        "",
        f"packet size (bytes/packet per flow): {_quantiles(summary.packet_size)}",
        f"duration (ms):                       {_quantiles(summary.duration_ms)}",
        f"inter-start time (ms):               {_quantiles(summary.start_gap_ms)}",
    ]
    return "\n".join(lines)


def plot(summary: Summary, path: Path) -> None:
    """Four panels: protocol mix, service ports, and the packet size / duration / start-gap distributions."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise FlowscopeError("--plot needs matplotlib (pip install 'flowscope[plot]')") from exc
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    names = [row[0] for row in summary.protocols[:8]]
    axes[0, 0].barh(names[::-1], [row[1] for row in summary.protocols[:8]][::-1])
    axes[0, 0].set_title("flows per protocol")
    ports = summary.ports[:10]
    axes[0, 1].bar([str(p) for p, _ in ports], [c for _, c in ports])
    axes[0, 1].set_title("flows per service port")
    for axis, values, title in (
        (axes[1, 0], summary.packet_size, "bytes per packet (flows)"),
        (axes[1, 1], summary.duration_ms, "duration ms (flows, log) and inter-start ms"),
    ):
        if len(values):
            positive = values[values > 0]
            if title.startswith("duration") and len(positive):
                bins = np.logspace(0, np.log10(positive.max() + 1), 40)
                axis.hist(positive, bins=bins, alpha=0.6, label="duration")
                gaps = summary.start_gap_ms[summary.start_gap_ms > 0]
                if len(gaps):
                    axis.hist(gaps, bins=bins, alpha=0.6, label="inter-start")
                axis.set_xscale("log")
                axis.legend()
            else:
                axis.hist(values, bins=50)
        axis.set_title(title)
    fig.suptitle(f"traffic profile: {summary.flows:,} flows")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise FlowscopeError(f"cannot write {path}: {exc}") from exc
    finally:
        plt.close(fig)
