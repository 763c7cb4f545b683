"""The ``--enrich`` networks and interfaces files (CSV or TOML) through ``Networks.load`` / ``Interfaces.load``.

The first byte picks the file kind and syntax. The third-party data has no such files: the seeds are the
documented examples (docs/ENRICH.md) written here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from flowscope.errors import FlowscopeError
from flowscope.transforms.enrich.interfaces import Interfaces
from flowscope.transforms.enrich.networks import Networks
from fuzz.harness import Scratch

MAX_LEN = 1 << 13
KINDS = (
    (Networks.load, Scratch("networks.csv")),
    (Networks.load, Scratch("networks.toml")),
    (Interfaces.load, Scratch("interfaces.csv")),
    (Interfaces.load, Scratch("interfaces.toml")),
)
EXAMPLES = (
    "cidr,name,role,site,region,tenant,boundary\n# comment\n10.0.0.0/8,corp,,ams,eu,,internal\n"
    "10.1.0.0/16,lab,servers,ams,eu,t1,internal\n2001:db8::/32,v6,,,,,external\n",
    '[networks."10.0.0.0/8"]\nname = "corp"\nboundary = "internal"\n[networks."192.0.2.0/24"]\nsite = "par"\n',
    "exporter,ifindex,name,description,speed,boundary\n192.0.2.1,1,ge-0/0/1,uplink,10000000000,external\n"
    "2001:db8::1,4294967295,xe-1,,,internal\n",
    '[[interface]]\nexporter = "192.0.2.1"\nifindex = 3\nname = "et-0/0/0"\nspeed = 100000000000\n',
)


def seeds() -> Iterator[bytes]:
    for choice, text in enumerate(EXAMPLES):
        yield bytes([choice]) + text.encode()


def one_input(data: bytes) -> None:
    if not data:
        return
    load, scratch = KINDS[data[0] % len(KINDS)]
    with contextlib.suppress(FlowscopeError):
        load(scratch.write(data[1:]))
