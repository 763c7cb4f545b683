"""pcap files through the ``pcap`` reader: record chain, link/IP/transport/tunnel headers, the flow meter."""

from collections.abc import Iterator

from fuzz.targets._captures import MAX_LEN, PCAP_MAGICS, capture_seeds, read_capture

__all__ = ["MAX_LEN", "one_input", "seeds"]


def seeds() -> Iterator[bytes]:
    return capture_seeds(PCAP_MAGICS)


def one_input(data: bytes) -> None:
    read_capture(data)
