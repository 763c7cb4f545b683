"""Packet captures: pcap/pcapng readers and the vectorised layer decoder that turns frames into PacketBatches."""

from flowscope.capture.files import capture_files, iter_packet_batches
from flowscope.capture.layers import decode_frames
from flowscope.capture.packets import PacketBatch

__all__ = ["PacketBatch", "capture_files", "decode_frames", "iter_packet_batches"]
