"""Keeping the process's memory what the tensors need: big-model exports run near the host's limit.

- glibc serves allocations below its mmap threshold from heaps it rarely returns; that threshold
  grows to 32 MB after the first large free, so a stream of per-layer fp32 temporaries (10-200 MB)
  fragments the heap and RSS stays gigabytes above the live tensors. ``tune_allocator`` pins the
  threshold at 1 MiB: large buffers are mmap'd and go back to the OS when freed.
- ``release`` runs the garbage collector and hands free heap pages back (``malloc_trim``).
"""

from __future__ import annotations

import ctypes
import gc

_M_MMAP_THRESHOLD = -3
_tuned = False


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def tune_allocator(threshold: int = 1 << 20) -> bool:
    """Pin glibc's mmap threshold (once per process); False where there is no glibc."""
    global _tuned
    libc = _libc()
    if libc is None:
        return False
    if not _tuned:
        _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    return _tuned


def release() -> None:
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
