"""Flow-export collection: decoders for NetFlow v5/v9, IPFIX and sFlow, and the collector runtime."""
