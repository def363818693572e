"""The chaos suite's long form: the kill -9 and fresh-broker cases of tests/chaos/test_resume.py
over and over, each on a new stack, for ``SOAK_SECONDS`` (default 300). Every case counts its
marks end to end and asserts that nothing was lost and that the connector recovered within its
stated time, every time. `make soak` runs it; `make test` runs each case once.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from testkit.connector import ConnectorStack
from testkit.helpers import wait_for
from tests.chaos import test_resume as chaos
from tests.state_aggregator.conftest import EventTap

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
CASES = (chaos.test_kill_9_of_the_bridge_loses_no_event,
         chaos.test_kill_9_of_the_aggregator_loses_nothing_the_handler_sent,
         chaos.test_a_fresh_broker_gets_the_retained_picture_again_and_no_event_is_lost)


def test_the_chaos_cases_again_and_again(tmp_path: Path):
    end = time.monotonic() + SECONDS
    cycle = 0
    while cycle < len(CASES) or time.monotonic() < end:
        case = CASES[cycle % len(CASES)]
        run = tmp_path / f"cycle-{cycle}"
        run.mkdir()
        stack = ConnectorStack(run, scripted=True)
        try:
            watch = chaos.MarkWatcher(stack.broker.port).start()
            tap = wait_for(lambda s=stack: EventTap(s.handler_url), 30, interval=0.1, message="the handler's stream")
            try:
                case(stack, watch, tap)
            except AssertionError as exc:
                raise AssertionError(f"cycle {cycle}, {case.__name__}: {exc}") from None
            finally:
                tap.close()
                watch.stop()
        finally:
            stack.close()
        cycle += 1
    print(f"\n{cycle} chaos cycles in {SECONDS:.0f} s, nothing lost")
