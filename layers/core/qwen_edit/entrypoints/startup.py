"""A handler module's imports run without the cyclic garbage collector (issue 24).

Importing boto3, pydantic, Powertools and the core package builds hundreds of thousands of
objects, nearly none of them garbage, and the collector scans them again and again while they
are built. In Lambda, they are then frozen, moved out of every generation, so no collection
scans them again: not those of the first invocation's set-up (its boto3 clients), which gains
the most. benchmarks/cold_start.py measures each handler both ways.

Only Lambda's runtime (which sets AWS_LAMBDA_RUNTIME_API) freezes: a frozen object is never
collected, and the local stack and the tests load handlers again and again in one process.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def imports_without_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        if "AWS_LAMBDA_RUNTIME_API" in os.environ:
            gc.freeze()
    finally:
        if enabled:
            gc.enable()
