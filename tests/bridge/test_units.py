"""Plain-Python parts of the bridge: the outbox, topic parsing, command parsing."""
from __future__ import annotations

import pytest

from bridge.commands import contract_command
from bridge.outbox import KEEP, STATE, Outbox
from shared.commands import CommandError
from shared.topics import Topics

T = Topics("IoT2mqtt", "hub")


def test_outbox_keeps_order_and_survives_reopening(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    seqs = [box.put(f"t/{n}", str(n).encode(), 1, False, KEEP) for n in range(5)]
    box.ack(seqs[:2])
    box.close()
    again = Outbox(tmp_path / "o.sqlite3")
    assert [m.payload for m in again.pending()] == [b"2", b"3", b"4"]
    assert [m.payload for m in again.pending(after=seqs[3])] == [b"4"]


def test_outbox_keeps_only_the_newest_state_per_topic(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    box.put("s/a", b"1", 1, True, STATE)
    box.put("e", b"event", 1, False, KEEP)
    box.put("s/a", b"2", 1, True, STATE)
    assert [(m.topic, m.payload, m.retain) for m in box.pending()] == [("e", b"event", False), ("s/a", b"2", True)]
    assert box.stats()["replaced_state"] == 1


def test_outbox_bound_drops_the_oldest_state_first_and_counts(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3", max_messages=4)
    box.put("s/a", b"a", 1, True, STATE)
    box.put("e/1", b"1", 1, False, KEEP)
    box.put("s/b", b"b", 1, True, STATE)
    box.put("e/2", b"2", 1, False, KEEP)
    box.put("e/3", b"3", 1, False, KEEP)  # over the bound: s/a goes
    assert [m.topic for m in box.pending()] == ["e/1", "s/b", "e/2", "e/3"]
    box.put("e/4", b"4", 1, False, KEEP)  # s/b goes
    box.put("e/5", b"5", 1, False, KEEP)  # nothing but events left: the oldest event goes
    assert [m.topic for m in box.pending()] == ["e/2", "e/3", "e/4", "e/5"]
    assert box.stats()["dropped_state"] == 2 and box.stats()["dropped_keep"] == 1
    assert len(box) == 4
    box.ack([m.seq for m in box.pending()][:3] + [999])  # an unknown seq changes nothing
    assert len(box) == 1 == len(box.pending())


def test_outbox_pages_in_order_and_its_file_matches_what_it_holds(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    box.set_connected(True)  # connected and not backlogged: every state is kept
    seqs = [box.put(f"s/{n % 7}", str(n).encode(), 1, True, STATE) for n in range(1500)]
    paged, after = [], 0
    while page := box.pending(after=after, limit=100):  # how the sender walks it
        paged += page
        after = page[-1].seq
    assert [m.seq for m in paged] == seqs
    box.ack(seqs[:1400])  # enough acks to compact the in-memory order
    box.set_connected(False)
    box.put("s/3", b"newest", 1, True, STATE)  # replaces the pending s/3 rows
    held = [(m.topic, m.payload) for m in box.pending(limit=1000)]
    assert held[-1] == ("s/3", b"newest") and all(t != "s/3" for t, _ in held[:-1])
    box.close()
    again = Outbox(tmp_path / "o.sqlite3")
    assert [(m.topic, m.payload) for m in again.pending(limit=1000)] == held
    assert again.put("e", b"x", 1, False, KEEP) > seqs[-1] + 1  # numbering goes on after the last one


@pytest.mark.parametrize("topic, kind, ident, problem", [
    ("IoT2mqtt/v1/instances/hub/devices/d1/cmd", "device_cmd", "d1", None),
    ("IoT2mqtt/v1/instances/hub/devices/d1/get", "device_get", "d1", None),
    ("IoT2mqtt/v1/instances/hub/devices/d1/cmd/x/y", "device_cmd", "d1", "extra"),
    ("IoT2mqtt/v1/instances/hub/devices//cmd", "device_cmd", "", "empty"),
    ("IoT2mqtt/v1/instances/hub/groups/g/cmd", "group_cmd", "g", None),
    ("IoT2mqtt/v1/instances/hub/meta/request/info", "meta_request", "info", None),
    ("IoT2mqtt/v1/instances/hub/ha/d1/set", "ha_command", "d1", None),
    ("IoT2mqtt/v1/instances/hub/devices/d1/cmd/response", "own_publication", None, None),
    ("IoT2mqtt/v1/instances/other/devices/d1/cmd", "unknown", None, "instance"),
])
def test_topic_parsing(topic, kind, ident, problem):
    parsed = T.parse(topic)
    assert parsed.kind == kind
    if ident is not None:
        assert ident in (parsed.device_id, parsed.group_id, parsed.request)
    assert (parsed.problem is None) == (problem is None)
    if problem:
        assert problem in parsed.problem


def test_topics_built():
    assert T.status == "IoT2mqtt/v1/instances/hub/status"
    assert T.state_property("d", "temperature") == "IoT2mqtt/v1/instances/hub/devices/d/state/temperature"
    assert T.global_events == "IoT2mqtt/v1/global/events"
    assert T.ha_config("sensor", "hub_d") == "homeassistant/sensor/hub_d/config"


def test_a_contract_command_must_set_something():
    # The envelope itself is shared/commands.py's (tests/shared/test_commands.py); on MQTT `get`
    # asks for the state, so a `cmd` without values is refused.
    assert contract_command(b'{"id": 5, "values": {"position": 1}, "timeout": 500}').values == {"position": 1}
    for payload in (b'{"id": "only"}', b'{"values": {}}'):
        with pytest.raises(CommandError) as info:
            contract_command(payload)
        assert info.value.code == "INVALID_PAYLOAD" and info.value.extra["field"] == "values"


def test_now_iso_carries_the_local_offset():
    from datetime import datetime

    from shared.clock import LocalZone, iso_at, now_iso

    stamp = datetime.fromisoformat(now_iso())
    assert stamp.utcoffset() == datetime.now().astimezone().utcoffset()
    assert abs((datetime.now().astimezone() - stamp).total_seconds()) < 60
    zone = LocalZone(refresh_s=0)  # re-read on every call
    assert zone.now().utcoffset() == datetime.now().astimezone().utcoffset()
    assert iso_at(0.0, 'seconds') == datetime.fromtimestamp(0.0).astimezone().isoformat(timespec='seconds')


@pytest.mark.parametrize("suffix", ["devices/d/cmd", "devices/d/cmd/extra", "devices/d/get", "devices/d/get/a/b",
                                    "groups/g/cmd", "groups/g/cmd/x", "meta/request/info", "ha/d/set",
                                    "ha/d/position/extra", "ha/d/state"])
def test_every_incoming_topic_matches_exactly_one_subscription(suffix):
    """A broker may deliver one copy per matching filter (MQTT 3.1.1 §3.3.5; nats-server does):
    overlapping filters would carry out a command twice."""
    from paho.mqtt.client import topic_matches_sub

    subs = T.subscriptions(ha=True)
    topic = f"{T.root}/{suffix}"
    assert sum(topic_matches_sub(s, topic) for s in subs) == 1, (topic, subs)
    assert sum(topic_matches_sub(s, T.ha_status) for s in subs) == 1


def test_recent_commands_ignore_copies_in_flight_and_within_the_window():
    from bridge.recent_commands import RecentCommands

    now = [0.0]
    recent = RecentCommands(window_s=60, max_ids=3, clock=lambda: now[0])
    assert recent.seen("a") is None and recent.claim("a") is True
    assert recent.seen("a") == "in flight" and recent.claim("a") is False
    now[0] = 100.0  # in flight for long: still remembered
    recent.answered("a")
    now[0] = 159.0
    assert recent.seen("a") == "answered"
    now[0] = 161.0  # the window has passed: the same id is a new command
    assert recent.seen("a") is None and recent.claim("a") is True
    assert recent.duplicates == 3


def test_recent_commands_forget_the_oldest_answered_ids_first_never_those_in_flight():
    from bridge.recent_commands import RecentCommands

    recent = RecentCommands(max_ids=2, clock=lambda: 0.0)
    recent.claim("running")
    recent.claim("done")
    recent.answered("done")
    recent.claim("new")  # over the bound: "done" goes, "running" stays
    assert recent.seen("done") is None and recent.seen("running") == "in flight" and len(recent) == 2


def test_answers_to_unknown_targets_have_a_budget():
    from bridge.commands import AnswerBudget

    now = [0.0]
    budget = AnswerBudget(rate=5, burst=20, clock=lambda: now[0])
    assert sum(budget.take() for _ in range(30)) == 20 and budget.refused == 10
    now[0] = 1.0  # a second later: five more
    assert sum(budget.take() for _ in range(30)) == 5
