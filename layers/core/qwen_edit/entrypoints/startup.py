"""A handler module's imports run without the cyclic garbage collector (issue 24).

Importing boto3, pydantic, Powertools and the core package builds hundreds of thousands of
objects, nearly none of them garbage, and the collector scans them again and again while they
are built. After the imports they are frozen, moved out of every generation, so no collection
scans them again: not those of the first invocation's set-up (its boto3 clients), which gains
the most. benchmarks/cold_start.py measures each handler both ways: the pause saves up to
about a tenth of a cold start.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def imports_without_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
