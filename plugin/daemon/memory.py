"""Process-wide memory behaviour of the long-running agent.

glibc serves large allocations with mmap only above a threshold that it raises by itself whenever such
a block is freed (up to 32 MB). The LDAP phonebook replaces its index, megabytes-large buffers, after
every sync that changes contacts; once the threshold has crept up, those buffers come from the heap and
their memory stays with the process after the old index is dropped. A fixed threshold keeps every large
buffer mmapped, so a replaced index is returned to the system at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
LARGE_ALLOCATION = 1 << 20


def return_large_frees_to_os(threshold: int = LARGE_ALLOCATION) -> bool:
    """Fix glibc's mmap threshold; False (and nothing changed) on other C libraries."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold))
    log.debug("malloc mmap threshold fixed at %d bytes: %s", threshold, ok)
    return ok
