"""What the executable settles before pyarrow loads; ``flowscope.cli`` imports this module first.

Arrow reads its allocator's name from the environment once, as libarrow loads, so a command held to a
memory bound must choose it here, before any module that imports pyarrow (``memory.bound_arrow_pool_for``).
"""

from __future__ import annotations

import sys

from flowscope.memory import bound_arrow_pool_for

bound_arrow_pool_for(sys.argv[1:])
