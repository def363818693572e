"""Fixtures of the shared-module tests."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.instance_dir import HeldPorts


@pytest.fixture
def held_ports() -> Iterator[HeldPorts]:
    """``held_ports.take()``: a loopback port another program holds until the test ends."""
    ports = HeldPorts()
    yield ports
    ports.close()
