"""Hand the heap's free pages back to the operating system, now and then.

A worker's Python objects stay flat under load, yet glibc keeps the memory it frees: large
buffers (fetched batches, encoded records, table values) come and go between long-lived
objects, so the free space is scattered through the heap and never at its top, where
glibc would release it by itself. Measured on the reporting stage at 200 calls/s for
15 minutes: the Python allocator's blocks flat at 1.4 million while the malloc heap grew
from 37 to 90 MiB, two thirds of it free (docs/performance.md, "Heap memory handed back to the
OS"). ``malloc_trim``
releases those free pages wherever they are.

Fixing glibc's mmap threshold (so that large buffers keep their own mappings) kept the heap
smaller still, but a replay of a month ran 12% slower with it: every fetch-sized buffer then
costs a mapping and its page faults. The trim alone has no such cost.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def malloc_trim() -> Any | None:
    """glibc's ``malloc_trim``; ``None`` where the C library has none (musl, macOS), whose
    allocators return memory their own way."""
    name = ctypes.util.find_library("c")
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Give free heap pages back to the OS; ``False`` when nothing was released or the
    C library cannot."""
    trim = malloc_trim()
    return bool(trim(0)) if trim is not None else False
