"""The readings history behind the status page's sparklines: the ring (bounded, in time order,
one point per slot), ``?since=``, and the REST endpoints over real HTTP."""
from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from services.state_aggregator.history import (
    POINT_BYTES,
    ReadingHistory,
    Ring,
    parse_since,
    reading_of,
    thin,
)
from testkit.helpers import wait_for

T0 = 1_800_000_000.0  # a round epoch: slots of 10 s start on it


def test_a_ring_never_holds_more_than_its_capacity_and_drops_the_oldest_first():
    ring = Ring(capacity=5, resolution=1.0)
    for i in range(12):
        ring.add(T0 + i, float(i))
    assert len(ring) == 5
    assert ring.points() == [[T0 + i, float(i)] for i in range(7, 12)]
    ring.add(T0 + 12, 12.0)  # wraps again, past the start of the arrays
    assert [v for _, v in ring.points()] == [8.0, 9.0, 10.0, 11.0, 12.0]


def test_a_reading_in_the_same_slot_replaces_the_last_point():
    ring = Ring(capacity=10, resolution=10.0)
    ring.add(T0 + 1, 20.0)
    ring.add(T0 + 9.5, 21.0)   # same 10 s slot: the last point is now the newest reading
    ring.add(T0 + 10, 22.0)    # next slot: a new point
    assert ring.points() == [[T0 + 9.5, 21.0], [T0 + 10, 22.0]]
    ring.add(T0 + 5, 23.0)     # the clock stepped back: still no point out of order
    assert ring.points() == [[T0 + 9.5, 21.0], [T0 + 10, 23.0]]


def test_since_keeps_the_points_at_or_after_it_also_after_wrapping():
    ring = Ring(capacity=4, resolution=1.0)
    for i in range(6):
        ring.add(T0 + i, float(i))
    assert ring.points(since=T0 + 3) == [[T0 + 3, 3.0], [T0 + 4, 4.0], [T0 + 5, 5.0]]
    assert ring.points(since=T0 + 3.5) == [[T0 + 4, 4.0], [T0 + 5, 5.0]]
    assert ring.points(since=T0 + 99) == []
    assert ring.points(since=0) == ring.points()


def test_the_history_records_each_types_reading_only_for_configured_devices():
    history = ReadingHistory([("t", "temperature"), ("m", "motion"), ("w", "window"), ("s", "switch")],
                             capacity=3, resolution_s=1.0)
    assert history.record("t", {"temperature": 21.5}, T0)
    assert not history.record("t", {"humidity": 40}, T0 + 1)       # not its reading
    assert not history.record("t", {"temperature": "warm"}, T0 + 2)
    assert history.record("m", {"motion": True}, T0)                # a boolean is 0/1
    assert history.record("w", {"position": 40, "moving": True}, T0)
    assert not history.record("s", {"state": "on"}, T0)             # a switch has no number
    assert not history.record("unknown", {"temperature": 30}, T0)   # never a ring for an unknown id
    assert history.points("t") == [[T0, 21.5]]
    assert history.points("m") == [[T0, 1.0]]
    assert history.points("w") == [[T0, 40.0]]
    assert history.describe("w") == {"property": "position", "unit": "%"}
    assert history.describe("s") == {"property": None, "unit": None}
    with pytest.raises(KeyError):
        history.points("unknown")
    # The bound: three devices with a reading (the switch has none), three points of 16 bytes each.
    assert history.max_bytes == 3 * 3 * POINT_BYTES
    for i in range(100):
        history.record("t", {"temperature": 20 + i}, T0 + 10 + i)
    assert history.stats()["points"] == 3 + 1 + 1


def test_reading_of_refuses_what_is_not_a_finite_number():
    assert reading_of("temperature", {"temperature": float("nan")}) is None
    assert reading_of("humidity", {"humidity": 40}) == 40.0
    assert reading_of("toaster", {"toaster": 1}) is None


@pytest.mark.parametrize("raw, expected", [
    ("90s", T0 - 90), ("15m", T0 - 900), ("1h", T0 - 3600), ("0.5h", T0 - 1800),
    (str(T0 - 5), T0 - 5),
    ("2027-01-15T08:00:00+00:00", datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()),
    ("2027-01-15T08:00:00 00:00", datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()),  # '+' unencoded
])
def test_since_takes_iso_epoch_seconds_or_a_span_back(raw, expected):
    assert parse_since(raw, T0) == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["yesterday", "-5", "nan", "1d", "2027-13-01T00:00:00", ""])
def test_a_bad_since_is_a_value_error_with_a_sentence(raw):
    with pytest.raises(ValueError, match="since"):
        parse_since(raw, T0)


def test_thin_keeps_at_most_that_many_points_and_always_the_newest():
    points = [[float(i), float(i)] for i in range(100)]
    thinned = thin(points, 10)
    assert len(thinned) == 10 and thinned[-1] == [99.0, 99.0]
    assert thinned == sorted(thinned)
    assert thin(points[:5], 10) == points[:5]


# -- over HTTP


def test_the_history_endpoints_answer_readings_and_clear_errors(rig):
    under_test, handler = rig
    started = time.time()
    handler.set_state("living_temperature", temperature=23.5)
    body = wait_for(lambda: (b := under_test.get("/device/living_temperature/history").json())["points"] and b, 10)
    assert body["device_id"] == "living_temperature" and body["property"] == "temperature"
    assert body["unit"] == "°C" and body["resolution_s"] > 0
    t, value = body["points"][-1]
    assert value == 23.5 and started - 1 <= t <= time.time() + 1
    assert under_test.get("/device/living_temperature/history", params={"since": "1h"}).json()["points"]
    assert under_test.get("/device/living_temperature/history",
                          params={"since": str(time.time() + 60)}).json()["points"] == []
    everything = under_test.get("/history", params={"since": "15m", "points": "30"}).json()
    assert everything["devices"]["living_temperature"]["points"][-1][1] == 23.5
    assert "living_led" in everything["devices"] and everything["devices"]["living_led"]["property"] == "brightness"

    bad = under_test.get("/device/living_temperature/history", params={"since": "last tuesday"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "INVALID_VALUE" and bad.json()["field"] == "since"
    assert "last tuesday" in bad.json()["message"]
    assert under_test.get("/history", params={"points": "0"}).status_code == 400
    unknown = under_test.get("/device/toaster/history")
    assert unknown.status_code == 404 and unknown.json()["error"] == "UNKNOWN_DEVICE"


def test_the_overview_and_the_page_are_served_by_the_aggregator(rig):
    under_test, _ = rig
    overview = under_test.get("/overview").json()
    assert overview["services"]["serial_handler"]["status"] == "ok"
    assert "mqtt" in overview and "history" in overview
    assert overview["api_token"]["where"]                    # where the token is, for the page to say
    assert under_test.settings.api_token.value not in str(overview)  # never the token itself
    # The scripted handler has no /boards: said, not an error of the whole answer.
    assert "boards" in overview or "boards_error" in overview
    assert under_test.listed()["living_window"]["board"] == "living_room_esp32"

    page = under_test.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Cache-Control"] == "no-cache" and page.headers["ETag"]
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    again = under_test.get("/", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status_code == 304
    module = under_test.get("/static/app.js")
    assert module.status_code == 200 and module.headers["Content-Type"].startswith("text/javascript")
    assert under_test.get("/static/missing.js").status_code == 404
    assert under_test.get("/static/../app.py").status_code == 404
