"""What a failed HTTP request (requests/urllib3) means underneath."""
from __future__ import annotations

from typing import Any


def is_refused(exc: BaseException) -> bool:
    """Whether the error is, underneath, a refused connection (nobody listens on the port).

    requests wraps urllib3's error, which wraps the socket's: the refusal is found by walking
    causes, contexts, ``reason`` attributes and exception arguments, not by the outer type.
    """
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ConnectionRefusedError) or "Connection refused" in str(item):
            return True
        if isinstance(item, BaseException):
            stack.extend([item.__cause__, item.__context__, getattr(item, "reason", None),
                          *[a for a in item.args if isinstance(a, BaseException)]])
    return False
