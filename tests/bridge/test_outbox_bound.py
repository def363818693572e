"""The outbox's bound grows with the instance: the first publication of every device must fit."""
from __future__ import annotations

from bridge.bridge import OUTBOX_MIN, outbox_bound


def test_the_outbox_bound_holds_the_first_publication_of_every_device():
    # Each device's first publication is several rows (state, a topic per property, availability):
    # a fixed 10,000 dropped the oldest 1,500 retained states of an instance of 5,000 devices.
    assert outbox_bound(10) == OUTBOX_MIN
    assert outbox_bound(5000) >= 5000 * 6  # a LED: state, four properties, availability
