"""Address text <-> the 16-byte address column, whole columns at a time (no Python object per address).

``convert`` is the entry point (``flowscope.addresses.format_text``/``parse_text`` call it); ``ipv4`` and
``ipv6`` hold each family's grammar; ``rows`` the word-matrix primitives they share.
"""
