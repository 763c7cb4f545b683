"""Runs of capture files metered apart and stitched (``flowscope.jobs``) equal one meter over all the files."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.capture.frame_builders import ether, ipv4, udp
from tests.conftest import require_tool, shared_data
from tests.jobs.rotated import mixed_packets, one_meter, rotate, split_capture, stitched, write_pcap

from flowscope.capture.options import MeterOptions
from flowscope.demo.pcap import write_synthetic_pcap
from flowscope.jobs.stitch import NotStitchable, meter_run

SHORT = MeterOptions(active=30, idle=10)


@pytest.mark.parametrize("opens_stream", [True, False])
@pytest.mark.parametrize("cuts", [[1], [2], [3], [1, 2], [1, 3, 4], [1, 2, 3, 4]])
def test_hand_made_flows_over_every_kind_of_boundary(tmp_path: Path, cuts: list[int], opens_stream: bool) -> None:
    files = rotate(mixed_packets(), [10.0, 20.0, 40.0, 60.0], tmp_path)
    expected = one_meter(files, SHORT)
    result, stitcher = stitched(files, SHORT, cuts, opens_stream=opens_stream)
    assert result.equals(expected)
    assert stitcher.packets == len(mixed_packets())


def test_the_three_cases_of_a_carried_flow_all_occur(tmp_path: Path) -> None:
    files = rotate(mixed_packets(), [10.0, 20.0, 40.0, 60.0], tmp_path)
    _, stitcher = stitched(files, SHORT, [1, 2, 3, 4])
    assert stitcher.joined and stitcher.remetered  # continued whole, and re-metered from packet rows


@pytest.mark.parametrize(("active", "idle", "runs"), [(300, 60, 2), (120, 30, 3), (30, 10, 5), (20, 15, 4)])
def test_synthetic_rotated_directory(tmp_path: Path, active: float, idle: float, runs: int) -> None:
    require_tool("editcap")
    whole = tmp_path / "whole.pcap"
    write_synthetic_pcap(whole, packets=40_000, flows=3_000, duration=400)
    files = split_capture(whole, tmp_path / "rotated", 4_000)
    options = MeterOptions(active=active, idle=idle)
    expected = one_meter(files, options)
    cuts = [round(index * len(files) / runs) for index in range(1, runs)]
    result, _ = stitched(files, options, cuts)
    assert result.num_rows == expected.num_rows
    assert result.equals(expected)


@pytest.mark.parametrize("name", ["one_flow.pcap", "google_ssl.pcap", "skype.pcap", "steam.pcap", "facebook.pcap"])
def test_nfstream_captures_cut_into_pieces(tmp_path: Path, name: str) -> None:
    require_tool("editcap")
    capture = shared_data("pcap", "nfstream", name)
    files = split_capture(capture, tmp_path / "rotated", 40)
    options = MeterOptions(active=1800, idle=120)  # NFStream's timeouts (results/ were made with them)
    expected = one_meter([capture], options)
    for runs in (2, 3):
        cuts = [round(index * len(files) / runs) for index in range(1, runs)]
        result, _ = stitched(files, options, cuts)
        assert result.equals(expected), (name, runs)


def test_a_fragment_whose_first_fragment_is_in_the_run_before_is_refused(tmp_path: Path) -> None:
    packets = [
        (1.0, ether(ipv4(udp(4000, 4001, bytes(64))[:24], 17, frag_offset=0, more_fragments=True, ident=5))),
        (2.0, ether(ipv4(bytes(48), 17, frag_offset=3, ident=5))),
    ]
    files = rotate(packets, [1.5], tmp_path)
    with pytest.raises(NotStitchable, match="fragments"):
        stitched(files, SHORT, [1])


def test_times_going_back_far_across_a_boundary_are_refused(tmp_path: Path) -> None:
    packets = [(5.0, ether(ipv4(udp(1, 2), 17))), (3.5, ether(ipv4(udp(1, 2), 17)))]
    files = [tmp_path / "a.pcap", tmp_path / "b.pcap"]
    write_pcap(files[0], packets[:1])
    write_pcap(files[1], packets[1:])
    with pytest.raises(NotStitchable, match="go back"):
        stitched(files, SHORT, [1])


def test_a_flow_cache_that_may_overflow_is_refused(tmp_path: Path) -> None:
    files = rotate(mixed_packets(), [10.0, 20.0, 40.0, 60.0], tmp_path)
    with pytest.raises(NotStitchable, match="cache limit"):
        stitched(files, MeterOptions(active=30, idle=10, max_flows=4), [2])


def _interleaved(folder: Path, overlap: float) -> list[Path]:
    """The hand-made packets cut at the usual times, except that the packets of ``overlap`` to ``overlap / 2``
    seconds before a cut open the next file, behind one more packet just before the cut, as packets of two
    NIC queues interleave: times go back where a file begins."""
    cuts = [10.0, 20.0, 40.0, 60.0]
    packets = mixed_packets() + [(cut - 0.01, ether(ipv4(udp(7000, 7001), 17, "10.9.9.9"))) for cut in cuts]
    pieces: list[list[tuple[float, bytes]]] = [[] for _ in range(len(cuts) + 1)]
    late: list[list[tuple[float, bytes]]] = [[] for _ in range(len(cuts) + 1)]
    for t, frame in sorted(packets, key=lambda packet: packet[0]):
        piece = sum(t >= cut for cut in cuts)
        if piece < len(cuts) and cuts[piece] - overlap <= t < cuts[piece] - overlap / 2:
            late[piece + 1].append((t, frame))
        else:
            pieces[piece].append((t, frame))
    folder.mkdir(parents=True)
    files = []
    for number, piece in enumerate(pieces):
        files.append(folder / f"cap.pcap{number or ''}")
        write_pcap(files[-1], late[number] + piece)
    return files


@pytest.mark.parametrize("cuts", [[1], [2], [1, 2, 3, 4]])
def test_times_going_back_a_little_where_a_run_begins_are_stitched_exactly(tmp_path: Path, cuts: list[int]) -> None:
    files = _interleaved(tmp_path / "rotated", 0.9)
    result, _ = stitched(files, SHORT, cuts)
    assert result.equals(one_meter(files, SHORT))


def test_times_going_back_more_than_a_second_where_a_run_begins_are_refused(tmp_path: Path) -> None:
    files = _interleaved(tmp_path / "rotated", 3.0)
    with pytest.raises(NotStitchable, match="go back by more than 1 s"):
        stitched(files, SHORT, [1, 2, 3, 4])


def test_the_run_that_opens_the_stream_keeps_no_head(tmp_path: Path) -> None:
    files = rotate(mixed_packets(), [10.0, 20.0, 40.0, 60.0], tmp_path)
    kept = meter_run(files[:2], SHORT).state
    assert len(kept.head) and len(kept.rows)
    opening = meter_run(files[:2], SHORT, opens_stream=True)
    assert not len(opening.state.head) and not len(opening.state.rows)
    assert len(opening.state.tail) == len(kept.tail) + int(kept.head_open.sum())
