"""The one schedule: every endpoint on its own time, a hanging one never delays the others."""
from __future__ import annotations

import threading
import time

from services.http_poller.poller import backoff_delay
from services.http_poller.schedule import PollSchedule
from testkit.helpers import wait_for

from .conftest import sim_post


class Recorder:
    def __init__(self, block: str | None = None) -> None:
        self.calls: dict[str, list[float]] = {}
        self.release = threading.Event()
        self.block = block
        self.lock = threading.Lock()

    def poll(self, endpoint_id: str) -> float:
        with self.lock:
            self.calls.setdefault(endpoint_id, []).append(time.monotonic())
        if endpoint_id == self.block:
            self.release.wait(30)
        return 0.05

    def count(self, endpoint_id: str) -> int:
        with self.lock:
            return len(self.calls.get(endpoint_id, []))


def test_a_blocked_poll_holds_one_worker_and_the_others_keep_their_times(cleanup):
    recorder = Recorder(block="dead")
    schedule = cleanup.add(PollSchedule(recorder.poll, workers=2))
    schedule.start({"dead": 0.0, "alive": 0.0})
    wait_for(lambda: recorder.count("alive") >= 20, 20, message="20 polls of the live endpoint")
    assert recorder.count("dead") == 1  # never polled twice at once
    gaps = [b - a for a, b in zip(recorder.calls["alive"], recorder.calls["alive"][1:], strict=False)]
    assert max(gaps) < 2.0, gaps
    recorder.release.set()
    wait_for(lambda: recorder.count("dead") >= 2, 10, message="the released endpoint polled again")


def test_poll_now_brings_a_poll_forward_and_waits_for_it(cleanup):
    recorder = Recorder()
    schedule = cleanup.add(PollSchedule(lambda e: (recorder.poll(e), 3600.0)[1], workers=2))
    schedule.start({"slow": 3600.0})
    assert schedule.next_due_in("slow") > 3000
    assert schedule.poll_now("slow").wait(10)
    assert recorder.count("slow") == 1
    assert schedule.next_due_in("slow") > 3000  # back on its own rhythm after the fresh poll


def test_concurrent_poll_now_calls_share_the_poll_in_flight(cleanup):
    recorder = Recorder(block="e")
    schedule = cleanup.add(PollSchedule(recorder.poll, workers=2))
    schedule.start({"e": 3600.0})
    first = schedule.poll_now("e")
    wait_for(lambda: recorder.count("e") == 1, 10, message="the poll started")
    second = schedule.poll_now("e")
    assert not first.is_set() and not second.is_set()
    recorder.release.set()
    assert first.wait(10) and second.wait(10)
    assert recorder.count("e") == 1


def test_a_poll_after_a_command_follows_the_one_in_flight(cleanup):
    # A poll that started before a command may bring back the state from before it: the
    # command's confirming poll must run after it, not share it.
    recorder = Recorder(block="e")
    schedule = cleanup.add(PollSchedule(lambda e: (recorder.poll(e), 3600.0)[1], workers=2))
    schedule.start({"e": 3600.0})
    schedule.poll_now("e")
    wait_for(lambda: recorder.count("e") == 1, 10, message="the poll started")
    schedule.poll_now("e", after_now=True)
    recorder.block = None
    recorder.release.set()
    wait_for(lambda: recorder.count("e") == 2, 10, message="a second poll after the one in flight")
    wait_for(lambda: (schedule.next_due_in("e") or 0) > 3000, 10, message="back on its own rhythm")


def test_backoff_doubles_up_to_a_cap():
    assert [backoff_delay(2, n) for n in range(7)] == [2, 2, 4, 8, 16, 16, 16]
    assert backoff_delay(30, 5) == 60
    assert backoff_delay(120, 4) == 120  # never more often than configured


def test_one_hanging_endpoint_does_not_delay_another_behind_the_real_poller(simulator, service):
    hanging, healthy = simulator("json"), simulator("json")
    sim_post(hanging, "fault", {"fault": "hang"})
    svc = service({"hung": {"url": hanging.url, "profile": "json", "timeout": 3, "poll_interval": 0.2},
                   "ok": {"url": healthy.url, "profile": "json", "timeout": 3, "poll_interval": 0.2}},
                  {"hung_t": {"type": "temperature", "endpoint": "hung"},
                   "ok_t": {"type": "temperature", "endpoint": "ok"}}, workers=2)
    wait_for(lambda: hanging.device().requests >= 1, 10, message="the hanging endpoint asked")
    before = healthy.device().requests
    started = time.monotonic()
    # While the first request to the hanging endpoint is held (3 s), the healthy one keeps its 0.2 s rhythm.
    wait_for(lambda: healthy.device().requests >= before + 5, 2.5, message="5 polls of the healthy endpoint")
    assert time.monotonic() - started < 2.5
    assert hanging.device().requests == 1
    assert svc.sensor("ok_t")["online"] is True
    wait_for(lambda: svc.sensor("hung_t")["reason"] == "timeout after 3 s", 15, message="the hung device's reason")
    assert svc.sensor("hung_t")["online"] is False
