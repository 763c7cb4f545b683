"""Sinks consume flow batches: the lake (``flowscope.lake.LakeWriter``) and files (``files``)."""
