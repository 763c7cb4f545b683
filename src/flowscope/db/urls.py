"""A server URL as it may be shown (messages, sink names, the console's store line): without its password.

One function for every kind: ClickHouse, PostgreSQL and Elasticsearch URLs all carry ``USER:PASSWORD@`` in
their authority, and libpq's also take ``password=`` as a query parameter. Taken apart by hand, as urlsplit
does (the authority ends at the first ``/``, ``?`` or ``#``; the user part at its last ``@``, so a password
holding ``@`` is hidden whole), but never raising: a URL too broken to parse is still shown, in an error. A
URL without its ``scheme://`` (``USER:PASSWORD@HOST/DB``) hides all before the ``@`` after the first ``:``.
"""

from __future__ import annotations

import re

HIDDEN = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/*")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*")


def shown_url(url: str) -> str:
    """``url`` with the password of its user part and of a ``password=`` parameter replaced by ``***``."""
    prefix = _SCHEME.match(url)  # ``scheme://``, or a mistyped ``scheme:/`` or ``scheme:`` (shown in its error)
    if prefix is None:
        return url
    scheme, rest = prefix.group(), url[prefix.end() :]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    user, at, host = authority.rpartition("@")
    if at and ":" in user:
        authority = f"{user.partition(':')[0]}:{HIDDEN}@{host}"
    elif at and not scheme.endswith("/"):  # no ``//``: the "scheme" may be the user name, the user part its password
        authority = f"{HIDDEN}@{host}"
    return f"{scheme}{authority}" + _QUERY_PASSWORD.sub(r"\g<1>" + HIDDEN, tail)
