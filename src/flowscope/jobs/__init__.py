"""Metering on more than one core: stitching partial results of rotated captures, and the Spark job."""
