"""The readers' options as command-line flags, and flags -> the typed options readers are opened with.

Click stops here: each family's decorator adds its flags (values arrive as the command's keyword
arguments), and ``*_from(flags)`` builds that family's dataclass from them, an absent flag (``None``)
keeping the dataclass default. Checking values is the dataclasses' job, so the command line and a
program get the same errors; the ranges declared here only show in ``--help`` and fail early.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
import pyarrow as pa

from flowscope.capture.options import TUNNEL_MODES, MeterOptions
from flowscope.capture.packet_records import RECORDS
from flowscope.cli.output import anonymize_flag
from flowscope.collect.options import ExportOptions
from flowscope.errors import FlowscopeError
from flowscope.nfdump.options import RecordSelection
from flowscope.readers.options import ReadOptions
from flowscope.readers.text_options import DEFAULT_COMMIT_ROWS, DEFAULT_COMMIT_SECONDS, TextOptions
from flowscope.reduce import BUILTIN, load
from flowscope.transforms.anonymize import read_key
from flowscope.transforms.enrich import EnrichConfig

F = TypeVar("F", bound=Callable[..., Any])

_METER = MeterOptions()


def _add(command: F, options: tuple[Callable[[F], F], ...]) -> F:
    """Options in the order given (the order ``--help`` lists them)."""
    for option in reversed(options):
        command = option(command)
    return command


def _given(flags: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The flags among ``names`` that were given (click passes an absent option as None)."""
    return {name: flags[name] for name in names if flags.get(name) is not None}


def meter_options(command: F) -> F:
    """Options for metering packet captures into flows (ignored by formats that are already flows)."""
    return _add(
        command,
        (
            click.option(
                "--active", type=float, help=f"Captures: active timeout in seconds (default {_METER.active:g})."
            ),
            click.option("--idle", type=float, help=f"Captures: idle timeout in seconds (default {_METER.idle:g})."),
            click.option("--uniflow", is_flag=True, help="Captures: one record per direction (default: biflows)."),
            click.option(
                "--bytes",
                "bytes_mode",
                type=click.Choice(["ip", "link"]),
                help="Captures: count IP-layer (default) or link-layer bytes.",
            ),
            click.option(
                "--tunnels",
                type=click.Choice(TUNNEL_MODES),
                help="Captures: meter tunnelled traffic by its outer (default) or inner headers (docs/CAPTURE.md).",
            ),
            click.option(
                "--max-flows",
                type=click.IntRange(min=1),
                help=f"Captures: flow cache limit; the longest-idle flows are exported early beyond it "
                f"(default {_METER.max_flows:,}).",
            ),
        ),
    )


def records_option(command: F) -> F:
    """``--records flows|packets``: meter captures into flows (default) or store one row per packet."""
    return click.option(
        "--records",
        type=click.Choice(RECORDS),
        default=RECORDS[0],
        show_default=True,
        help="Captures: meter flows, or store every IP packet in the 'packets' table (docs/CAPTURE.md).",
    )(command)


def records_from(flags: Mapping[str, Any]) -> str:
    """The ``--records`` choice; packet records take no flow transform (they would pass unchanged, e.g. an
    ``--anonymize`` that anonymised nothing), so asking for one is an error rather than a silent no-op."""
    records: str = flags.get("records") or RECORDS[0]
    if records != RECORDS[0]:
        flows_only = ("reduce_name", "enrich", "anonymize")
        given = [f"--{name.removesuffix('_name')}" for name in flows_only if flags.get(name)]
        if given:
            raise FlowscopeError(f"{', '.join(given)} applies to flows, not to --records {records}")
    return records


def meter_from(flags: Mapping[str, Any]) -> MeterOptions:
    return MeterOptions(
        link_bytes=flags.get("bytes_mode") == "link",
        **_given(flags, "active", "idle", "uniflow", "tunnels", "max_flows"),
    )


def csv_options(command: F) -> F:
    """Options of flow CSVs and live feeds, and the ingest reduction every reader shares."""
    return _add(
        command,
        (
            click.option("--tz", help="Time zone of naive timestamps in the input, e.g. America/Sao_Paulo [UTC]."),
            click.option("--strict", is_flag=True, help="Stop at the first unreadable row instead of counting it."),
            click.option(
                "--commit-rows",
                type=click.IntRange(min=1),
                help=f"Rows per lake commit, for files and stdin [{DEFAULT_COMMIT_ROWS:,}].",
            ),
            click.option(
                "--commit-seconds",
                type=click.FloatRange(min=0.01),
                help=f"Commit to the lake at least every T seconds while rows arrive [{DEFAULT_COMMIT_SECONDS:g}].",
            ),
            click.option(
                "--reduce",
                "reduce_name",
                metavar="NAME|FILE",
                help=f"Keyed reduction applied to each batch ({', '.join(BUILTIN)}, or a .toml/.json spec); "
                "read --reduce-whole: over all inputs.",
            ),
        ),
    )


def transform_options(command: F) -> F:
    """Transforms every command that produces flows applies (``--enrich``, ``--anonymize``)."""
    return _add(
        command,
        (
            click.option(
                "--enrich",
                type=click.Path(dir_okay=False),
                metavar="FILE.toml",
                help="Add AS numbers and names, countries, network, interface and exporter names (docs/ENRICH.md).",
            ),
            anonymize_flag(),
        ),
    )


def keep_rollups_option(command: F) -> F:
    """``--rollups/--no-rollups`` for the long-running writers (collect, consume, watch, capture)."""
    return click.option(
        "--rollups/--no-rollups",
        "keep_rollups",
        default=True,
        show_default=True,
        help="Keep the lake's roll-ups (flows_1m/5m/1h) current in the background (docs/ROLLUPS.md).",
    )(command)


def enrich_from(flags: Mapping[str, Any]) -> EnrichConfig | None:
    path = flags.get("enrich")
    return None if path is None else EnrichConfig.load(path)


def anonymize_from(flags: Mapping[str, Any]) -> bytes | None:
    path = flags.get("anonymize")
    return None if path is None else read_key(path)


def transforms_from(flags: Mapping[str, Any]) -> list[Callable[[pa.Table], pa.Table]]:
    """The batch transforms of commands without ``ReadOptions`` (``watch``, ``capture``)."""
    return ReadOptions(enrich=enrich_from(flags), anonymize=anonymize_from(flags)).transforms()


def text_from(flags: Mapping[str, Any]) -> TextOptions:
    return TextOptions(**_given(flags, "tz", "strict", "commit_rows", "commit_seconds"))


def export_options(command: F) -> F:
    """Options of recorded flow exports (``--tunnels`` is the meter's, shared)."""
    return _add(
        command,
        (
            click.option(
                "--as-exports",
                is_flag=True,
                help="Decode a capture's UDP payloads as NetFlow/IPFIX/sFlow exports instead of metering it.",
            ),
            click.option(
                "--sampling-config",
                type=click.Path(dir_okay=False),
                help="TOML file with per-exporter sampling-rate defaults and overrides (see docs/ARCHITECTURE.md).",
            ),
        ),
    )


def exports_from(flags: Mapping[str, Any]) -> ExportOptions:
    config = flags.get("sampling_config")
    return ExportOptions(sampling_config=None if config is None else Path(config), **_given(flags, "tunnels"))


def selection_options(command: F) -> F:
    """ft-profiler's nfdump record selections (``read`` and ``profile``)."""
    return _add(
        command,
        (
            click.option(
                "--exporter", metavar="ADDR", help="Only records from this exporter address (nfdump 'router ip')."
            ),
            click.option(
                "--in-if", type=int, metavar="ID", help="Only records of this input interface id (nfdump 'in if')."
            ),
            click.option("--drop-arp", is_flag=True, help="Drop non-IP records such as ARP."),
            click.option(
                "--max-records", type=click.IntRange(min=1), metavar="N", help="Stop after reading N records."
            ),
        ),
    )


def selection_from(flags: Mapping[str, Any]) -> RecordSelection:
    return RecordSelection(**_given(flags, "exporter", "in_if", "drop_arp", "max_records"))


def read_options_from(flags: Mapping[str, Any]) -> ReadOptions:
    """All families' options from the flags of ``flowscope read`` (a family's flags a command lacks keep its
    defaults)."""
    name = flags.get("reduce_name")
    return ReadOptions(
        meter=meter_from(flags),
        text=text_from(flags),
        exports=exports_from(flags),
        selection=selection_from(flags),
        reduce=load(name) if name else None,
        enrich=enrich_from(flags),
        anonymize=anonymize_from(flags),
        workers=flags.get("workers") or 1,
    )
