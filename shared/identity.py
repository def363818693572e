"""Which instance a service belongs to, and the check a follower makes before it trusts one.

With host networking, two instances on one machine (or sensor-hub beside another connector)
can be configured with the same port. Whichever program started first holds it, and a follower
pointed at that port would take another instance's devices for its own without a word. So every
service names its instance on every HTTP response (the ``X-Instance-Id`` header, added in one
place: ``shared.web.install_instance_header``), and the two followers — the aggregator of its
handler services, the bridge of the aggregator — refuse an answer that does not carry their own
instance id: the service counts as unreachable, with a reason that says whose it is.

This module needs neither Flask nor requests: the header is read from any mapping.
"""
from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

INSTANCE_HEADER = "X-Instance-Id"


class ForeignInstance(ConnectionError):
    """The service that answered is not one of this instance's; ``reason`` is the sentence a
    user sees (in /health, on the devices, in the log)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _origin(url: str) -> str:
    """``http://127.0.0.1:5003/events`` -> ``http://127.0.0.1:5003``: a port is what clashes."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


def foreign_reason(url: str, answered: str | None, expected: str) -> str | None:
    """Why the service at ``url``, whose ``X-Instance-Id`` was ``answered``, is not ours; None
    when it is. A missing header means a program that is no sensor-hub service of this version:
    not ours either."""
    if answered == expected:
        return None
    origin = _origin(url)
    if not answered:
        return (f"{origin} does not say which instance it belongs to (no {INSTANCE_HEADER} header), so it "
                f"is not a service of instance {expected!r} (another program on the same port?)")
    return f"{origin} belongs to instance {answered!r}, not {expected!r} (two instances configured with the same port?)"


def check_instance(url: str, headers: Mapping[str, str], expected: str | None) -> None:
    """Raise ForeignInstance unless ``headers`` (case-insensitive, as requests gives them) name
    ``expected``. ``expected=None`` checks nothing: tools and tests that follow any stream."""
    if expected is None:
        return
    reason = foreign_reason(url, (headers.get(INSTANCE_HEADER) or "").strip() or None, expected)
    if reason is not None:
        raise ForeignInstance(reason)
