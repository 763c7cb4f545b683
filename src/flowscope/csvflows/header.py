"""Column names as the dialects see them: one spelling for ``Source.IP``, `` Source IP`` and ``source_ip``."""

from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise(name: str) -> str:
    """``' Total Length of Fwd Packets'`` and ``'Total.Length.of.Fwd.Packets'`` -> ``total_length_of_fwd_packets``."""
    return _NON_ALNUM.sub("_", name.strip().lower()).strip("_")


def normalised_names(names: list[str]) -> list[str]:
    """Normalise every name; repeats get ``_1``, ``_2`` (CICFlowMeter writes ``Fwd Header Length`` twice,
    the Kaggle file calls the second one ``Fwd.Header.Length.1``, so both end up ``fwd_header_length_1``).
    A suffixed name that another column has already (``a, a, a_1``) counts on (``a_1_1``): names stay unique."""
    repeats: dict[str, int] = {}
    out: list[str] = []
    used: set[str] = set()
    for name in names:
        base = chosen = normalise(name) or "column"
        while chosen in used:
            repeats[base] = repeats.get(base, 0) + 1
            chosen = f"{base}_{repeats[base]}"
        used.add(chosen)
        out.append(chosen)
    return out


def split_header(line: bytes | bytearray) -> list[str]:
    """The fields of a header line (flow CSV headers carry no quoted commas)."""
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    return [field.strip().strip('"') for field in text.split(",")]
