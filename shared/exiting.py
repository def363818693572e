"""Leaving a process once its own stop is done, without the interpreter's teardown.

The whole connector must stop within 5 s of SIGTERM (docs/architecture.md, "Stopping"). Two
things at the very end of a program can eat that budget although nothing of ours is left to do:
the interpreter's teardown (with torch loaded, about a second of freeing modules) and joining
threads that are only waiting, such as a command abandoned at the bridge's stop deadline, which
Python's exit would wait for until its HTTP timeout.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def exit_now(status: int = 0) -> NoReturn:
    """Flush the log and the standard streams, then end the process at once with ``status``.

    Only for a program whose stop has run: no atexit handler, ``finally`` or thread runs after.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # closed or gone: nothing left to flush there
    os._exit(status)
