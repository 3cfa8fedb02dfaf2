"""Keep multi-megabyte message buffers on the heap instead of fresh ``mmap`` pages (glibc only).

glibc serves allocations above ``M_MMAP_THRESHOLD`` with a new ``mmap`` and unmaps them on free, so
every 4.9 MB VGA cloud the node receives, copies or serialises costs ~1,200 page faults of zeroed
memory: taking one PointCloud2 into Python measured 7.5 ms that way against 0.5 ms from the heap.
The threshold is meant to adapt, but it does not for these buffers in a ROS 2 Python process. A fixed
32 MiB threshold (glibc's maximum) and a higher trim threshold keep freed buffers for the next frame;
the price is that up to a few frames' worth of freed memory stays resident.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc
TRIM_THRESHOLD = 128 * 2**20
#: Set to 0 to leave the allocator as it is (e.g. to compare).
ENV_SWITCH = 'VIZION3D_MALLOC_TUNING'


def keep_large_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where not glibc or switched off."""
    if os.environ.get(ENV_SWITCH, '1') == '0' or not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
