"""Scale-out runners of the same readers, meter and sinks: capture files metered in several processes
(``read --workers``, ``watch --workers``) or on Spark executors, stitched into the one-machine result."""
