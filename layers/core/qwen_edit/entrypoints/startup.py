"""A handler module's imports run without the cyclic garbage collector (issue 24).

Importing boto3, pydantic, Powertools and the core package builds hundreds of thousands of
objects, nearly none of them garbage, and the collector scans them again and again while they
are built: 25 to 60 ms of every cold start here (benchmarks/cold_start.py). After the imports
they are frozen, moved out of every generation, so no later collection scans what lives as long
as the container anyway.
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
