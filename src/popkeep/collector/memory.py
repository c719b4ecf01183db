"""Giving memory a long pass has freed back to the system (issue 16 item 3).

Owns: :func:`release`. glibc's malloc keeps what each thread frees in that thread's
arena (the store's thread, the sinks' worker threads and the loop each have one),
and gives little of it back by itself: a first collection of 200,000 messages
peaked ≈ 12 MiB higher than the memory it held (``MALLOC_ARENA_MAX=1`` showed the
same), enough to cross the 100 MB bound. ``malloc_trim(3)`` returns the free pages
of every arena. A last resort, and said so: the pass calls it after a commit only
once it has committed many messages, so small passes (and the cron poll's start-up)
never load ``ctypes``. Where the C library has no ``malloc_trim`` (musl, macOS) it
does nothing.

Must not: be called per message (it walks every arena), or change what a pass does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim``, looked up once; None where there is none."""
    import ctypes

    try:
        trim: Callable[[int], int] | None = getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:  # pragma: no cover - no C library to open
        return None
    return trim


def release() -> None:
    """Return the free pages of every malloc arena to the system (glibc's
    ``malloc_trim(0)``); nothing elsewhere."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
