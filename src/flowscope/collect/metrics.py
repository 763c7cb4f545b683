"""Prometheus text exposition (version 0.0.4) of collector health, served over HTTP.

Metrics are rendered from a merged health snapshot (``flowscope.collect.health``), so a
single process and a multi-worker collector (whose workers write snapshots to the lake)
expose exactly the same series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flowscope.errors import FlowscopeError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "flowscope_collector_"

log = logging.getLogger("flowscope.collect")


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


class MetricFamily:
    """One metric with its samples (also used by ``flowscope consume``'s metrics, with their own prefix)."""

    def __init__(self, name: str, kind: str, help_text: str, prefix: str = PREFIX) -> None:
        self.name = prefix + name
        self.kind = kind
        self.help = help_text
        self.samples: list[tuple[dict[str, object], float]] = []

    def add(self, value: float, **labels: object) -> None:
        self.samples.append((labels, value))

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.samples:
            text = str(int(value)) if float(value).is_integer() else repr(float(value))
            yield f"{self.name}{_labels(labels)} {text}"


def render(merged: dict) -> str:
    """The exposition text for a merged snapshot (``health.merge_snapshots``)."""
    families = {
        name: MetricFamily(name, kind, help_text)
        for name, kind, help_text in (
            ("datagrams_total", "counter", "Datagrams decoded per exporter."),
            ("flows_total", "counter", "Flow records decoded per exporter."),
            ("decode_errors_total", "counter", "Datagrams not (fully) decoded, per exporter and reason."),
            ("sequence_lost", "gauge", "Sequence numbers missing (gaps minus late arrivals), per exporter and unit."),
            ("sequence_late_total", "counter", "Sequence numbers that arrived late or twice, per exporter and unit."),
            ("sequence_resets_total", "counter", "Sequence restarts (exporter restarted) per exporter."),
            ("last_seen_seconds", "gauge", "Unix time of the last datagram per exporter."),
            ("skipped_total", "counter", "Records or datagrams skipped by the decoders, per reason."),
            ("templates_missing_total", "counter", "Data records that arrived without a known template."),
            ("socket_received_datagrams_total", "counter", "Datagrams read from the socket per listener."),
            ("socket_received_bytes_total", "counter", "Payload bytes read from the socket per listener."),
            ("socket_drops_total", "counter", "Datagrams the kernel dropped on a full socket buffer, per listener."),
            ("socket_receive_buffer_bytes", "gauge", "Receive buffer the kernel granted (SO_RCVBUF) per listener."),
            ("queue_spooled_datagrams_total", "counter", "Datagrams that waited in the receive spool, per listener."),
            ("queue_spooled_bytes_total", "counter", "Bytes that waited in the receive spool, per listener."),
            ("capture_kernel_drops_total", "counter", "Packets the kernel dropped before a capture file, per capture."),
            ("capture_interface_drops_total", "counter", "Packets the interface dropped before capture, per capture."),
            ("capture_received_total", "counter", "Packets the capturer saw (tcpdump: received by filter)."),
            ("capture_captured_total", "counter", "Packets the capturer wrote to its files, per capture."),
            ("lake_rows_written_total", "counter", "Rows published to the lake per table."),
            ("templates_known", "gauge", "NetFlow v9/IPFIX templates known (all exporters)."),
            ("templates_held_sets", "gauge", "Data sets waiting for their template (bounded hold buffer)."),
        )
    }
    for item in merged.get("exporters", []):
        who = {"protocol": item["protocol"], "exporter": item["exporter"]}
        families["datagrams_total"].add(item["datagrams"], **who)
        families["flows_total"].add(item["flows"], **who)
        for reason, count in sorted(item.get("errors", {}).items()):
            families["decode_errors_total"].add(count, **who, reason=reason)
        for unit, count in sorted(item.get("lost", {}).items()):
            families["sequence_lost"].add(count, **who, unit=unit)
        for unit, count in sorted(item.get("late", {}).items()):
            families["sequence_late_total"].add(count, **who, unit=unit)
        families["sequence_resets_total"].add(item.get("resets", 0), **who)
        families["last_seen_seconds"].add(item["last_seen_ns"] / 1e9, **who)
    templates_missing = 0
    for reason, count in sorted(merged.get("skips", {}).items()):
        families["skipped_total"].add(count, reason=reason)
        if "template" in reason.lower():
            templates_missing += count
    families["templates_missing_total"].add(templates_missing)
    for name, listener in sorted(merged.get("listeners", {}).items()):
        where = {"listener": name}
        families["socket_received_datagrams_total"].add(listener.get("datagrams", 0), **where)
        families["socket_received_bytes_total"].add(listener.get("bytes", 0), **where)
        families["socket_drops_total"].add(listener.get("kernel_drops", 0), **where)
        families["socket_receive_buffer_bytes"].add(listener.get("receive_buffer", 0), **where)
        families["queue_spooled_datagrams_total"].add(listener.get("spooled_datagrams", 0), **where)
        families["queue_spooled_bytes_total"].add(listener.get("spooled_bytes", 0), **where)
    for name, counters in sorted(merged.get("captures", {}).items()):
        for counter in ("kernel_drops", "interface_drops", "received", "captured"):
            if counter in counters:  # a counter the capturer does not report stays absent, not 0
                family = "capture_" + counter + "_total"
                families[family].add(counters[counter], capture=name)
    for table, rows in sorted(merged.get("rows_written", {}).items()):
        families["lake_rows_written_total"].add(rows, table=table)
    templates = merged.get("templates", {})
    families["templates_known"].add(templates.get("known", 0))
    families["templates_held_sets"].add(templates.get("held_sets", 0))
    return "\n".join(line for family in families.values() for line in family.lines()) + "\n"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise FlowscopeError(f"--metrics wants HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class MetricsServer:
    """``GET /metrics`` answers with ``render_text(snapshot())``; runs in a daemon thread until ``close``."""

    def __init__(self, address: str, snapshot: Callable[[], dict], render_text: Callable[[dict], str] = render) -> None:
        host, port = parse_address(address)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                try:
                    body = render_text(snapshot()).encode()
                except Exception as exc:  # a broken snapshot must not kill the endpoint
                    log.warning("metrics: %s", exc)
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise FlowscopeError(f"--metrics {address}: {exc.strerror or exc}") from exc
        self.server.daemon_threads = True
        self.address = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
