"""Hand the heap's free pages back to the operating system, now and then.

A worker's Python objects stay flat under load, yet glibc keeps the memory it frees: large
buffers (fetched batches, encoded records, table values) come and go between long-lived
objects, so the free space is scattered through the heap and never at its top, where
glibc would release it by itself. Measured on the reporting stage at 200 calls/s for
15 minutes: the Python allocator's blocks flat at 1.4 million while the malloc heap grew
from 37 to 90 MiB, two thirds of it free (docs/reliability.md, bug 14). ``malloc_trim``
releases those free pages wherever they are.

The largest of those buffers are fetch responses, up to a MiB per partition. glibc serves
such a request from its own mapping, returned whole when freed, but each time one is freed
it raises that threshold to the freed size, so from then on they come from the heap.
Fixing the threshold keeps them out of it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from functools import cache

log = logging.getLogger(__name__)

#: glibc's mallopt parameter number for the mmap threshold.
M_MMAP_THRESHOLD = -3
#: glibc's initial value; setting it explicitly stops the dynamic raising.
MMAP_THRESHOLD_BYTES = 128 * 1024


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def keep_large_buffers_out_of_the_heap(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve allocations of ``threshold`` bytes or more from their own mappings, always;
    ``False`` where the C library has no ``mallopt`` for it (not glibc)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))


@cache
def malloc_trim() -> Callable[[], bool] | None:
    """glibc's ``malloc_trim(0)``: ``True`` when it released memory; ``None`` where the C
    library has none (musl, macOS), whose allocators return memory their own way."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> bool:
        return bool(trim(0))

    return release


def release_free_memory() -> bool:
    """Give free heap pages back to the OS; ``False`` when nothing was released or the
    C library cannot."""
    trim = malloc_trim()
    return trim() if trim is not None else False
