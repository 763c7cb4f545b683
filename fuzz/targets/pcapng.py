"""pcapng files through the ``pcap`` reader: blocks, options, interfaces and their time units, then as pcap."""

from collections.abc import Iterator

from fuzz.targets._captures import MAX_LEN, PCAPNG_MAGIC, capture_seeds, read_capture

__all__ = ["MAX_LEN", "one_input", "seeds"]


def seeds() -> Iterator[bytes]:
    return capture_seeds({PCAPNG_MAGIC})


def one_input(data: bytes) -> None:
    read_capture(data)
