"""Native reader of nfdump 1.7 binary files (nfcapd.*), no nfdump binary needed.

``container`` walks the file layout (header, data blocks, compression, appendix),
``records`` decodes the V3 flow records of a block into Arrow columns, ``reader``
is the ``flowscope read`` source. Layout facts are from nfdump's nffileV2.h / nfxV3.h;
see docs/NFDUMP.md.
"""
