"""Fewer malloc arenas: the memory a many-threaded program keeps and never uses again.

glibc gives threads that allocate at the same moment arenas of their own, up to 8 per core, and
an arena's freed memory mostly stays with the process. A service's request threads and the
bridge's publishing threads are many and short-lived, so under load each program kept tens of
MiB of arenas (the aggregator grew from 43 to 66 MiB PSS at 2,500 readings/s, ml_inference's torch
60 MiB at idle). Two arenas cost no measurable speed here: the programs hold the GIL around
nearly every allocation anyway (docs/architecture.md, "Memory").
"""
from __future__ import annotations

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


def limit_arenas(count: int = ARENAS) -> bool:
    """At most ``count`` malloc arenas for this process, as ``MALLOC_ARENA_MAX`` would; call it
    before the program starts its threads. False where the C library is not glibc (musl has a
    single heap anyway)."""
    try:
        import ctypes

        return bool(ctypes.CDLL(None).mallopt(_M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False
