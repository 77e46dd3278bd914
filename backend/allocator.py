"""The C allocator of a worker (glibc's malloc): big blocks are mapped for the time they live
and given back when freed, instead of being carved from the heap and kept.

glibc maps a block of 128 KB or more on its own and unmaps it when freed, but the first time
such a block is freed it raises that threshold to the block's size (and the heap's trim
threshold to twice that). The first login's scrypt (16 MB, points.passwords) is such a
block: from then on every block up to 16 MB (a drawing's strips and images, a PDF, a query's
rows) came from the heap, and up to 32 MB of the heap's free top was never given back, so a
worker that had served a login and a print job held 16 MB or more for nothing until it was
replaced. A fixed threshold keeps glibc from raising it (and the trim threshold at its 128 KB).
The same as MALLOC_MMAP_THRESHOLD_=1048576 in the environment, set where the worker starts
(wsgi.py) instead of in each deployment's service file and each benchmark."""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD = 1024 * 1024


def map_big_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; False where the C library has no
    mallopt (musl, macOS: their allocators do not keep freed blocks this way)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
