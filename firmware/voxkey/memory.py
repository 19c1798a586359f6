"""Keep the daemon's heap from growing dictation after dictation (glibc's malloc).

glibc hands out blocks above ``M_MMAP_THRESHOLD`` with their own ``mmap`` and gives
them back to the kernel when freed. The threshold is dynamic: every time such a
block is freed, it rises to that block's size (up to 32 MiB). After the first
few phrases, the daemon's per-phrase buffers (a phrase's samples, their float
copy for whisper: 0.1-2 MB each, allocated on the capture, worker and typist
threads) therefore come from the heaps instead, where freed ones fragment them
and are rarely returned. Fixing the threshold keeps every such buffer in its
own mapping; capping the arenas keeps the threads from growing a heap each.

Measured here with a 200 s dictation through the daemon (tiny.en-q5_1, 2
threads): peak RSS 185 MB with glibc's defaults, 148 MB with the threshold
fixed at 64 KiB, 160 MB with only the arenas capped (see
``benchmarks/dictation.py``). On a 512 MB Pi Zero 2 W that difference is most of
the headroom left after the OS.
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 64 * 1024
"""Small enough for every audio buffer (one second of int16 audio is 32 KB), large enough that Python's own
small objects never pay for a system call."""
ARENA_MAX = 2


def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:  # pragma: no cover - every Linux Python can open its own symbols
        return None
    return libc if hasattr(libc, "mallopt") else None  # musl and other C libraries have no mallopt


def limit_heap_growth(mmap_threshold: int = MMAP_THRESHOLD_BYTES, arena_max: int = ARENA_MAX) -> bool:
    """Fix glibc's mmap threshold and cap its arenas; False where that is not possible (not glibc).

    The user's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_ARENA_MAX`` environment settings win: glibc has
    read them at start, and they are left alone.
    """
    libc = _libc()
    if libc is None:
        log.debug("not glibc: heap growth left to the C library")
        return False
    applied = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        applied &= bool(libc.mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(mmap_threshold)))
    if "MALLOC_ARENA_MAX" not in os.environ:
        applied &= bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(arena_max)))
    if not applied:
        log.warning("glibc refused the heap settings; memory use may grow with long dictations")
    return applied
