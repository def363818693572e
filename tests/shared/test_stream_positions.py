"""shared/stream_positions.py: the saved resume points of followed event streams."""
from __future__ import annotations

import json
import logging
import threading

from shared.stream_positions import StreamPositions
from testkit.helpers import wait_for


class Source:
    """What an owner would hand over: the ids safe to save, or a failure to make them durable."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.failure: Exception | None = None
        self.calls = 0

    def __call__(self) -> dict[str, str]:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return dict(self.ids)


def test_saved_ids_are_read_back_by_the_next_start(tmp_path):
    path = tmp_path / "data" / "positions.json"
    source = Source()
    positions = StreamPositions(path, source)
    assert positions.get("aggregator") is None and not path.exists()
    source.ids = {"aggregator": "abc-41"}
    assert positions.save() and positions.get("aggregator") == "abc-41"
    assert json.loads(path.read_text()) == {"aggregator": "abc-41"}
    assert not list(path.parent.glob("*.tmp"))  # written aside, then renamed over

    again = StreamPositions(path, Source())
    assert again.get("aggregator") == "abc-41"
    again.save()  # nothing collected: what was saved stays
    assert json.loads(path.read_text()) == {"aggregator": "abc-41"}


def test_a_write_happens_only_when_something_changed(tmp_path):
    source = Source()
    positions = StreamPositions(tmp_path / "p.json", source)
    source.ids = {"a": "e-1"}
    for _ in range(5):
        positions.save()
    assert positions.writes == 1
    source.ids = {"a": "e-2", "b": "f-7"}
    positions.save()
    assert positions.writes == 2
    source.ids = {"b": "f-8"}  # a stream not collected this time keeps its saved id
    positions.save()
    assert json.loads((tmp_path / "p.json").read_text()) == {"a": "e-2", "b": "f-8"}


def test_the_writer_thread_saves_within_its_interval_and_once_more_at_stop(tmp_path):
    source = Source()
    positions = StreamPositions(tmp_path / "p.json", source, interval_s=0.05).start()
    try:
        source.ids = {"a": "e-1"}
        wait_for(lambda: json.loads((tmp_path / "p.json").read_text()) == {"a": "e-1"}, 5)
        source.ids = {"a": "e-2"}
    finally:
        positions.stop()
    assert json.loads((tmp_path / "p.json").read_text()) == {"a": "e-2"}


def test_nothing_is_saved_when_the_owner_cannot_make_it_durable_and_that_is_said_once(tmp_path, caplog):
    source = Source()
    positions = StreamPositions(tmp_path / "p.json", source)
    source.ids = {"a": "e-1"}
    positions.save()
    source.ids = {"a": "e-2"}
    source.failure = OSError("database or disk is full")
    with caplog.at_level(logging.WARNING, logger="shared.stream_positions"):
        for _ in range(3):
            assert positions.save() is False
    assert json.loads((tmp_path / "p.json").read_text()) == {"a": "e-1"}  # never ahead
    assert len([r for r in caplog.records if "disk is full" in r.getMessage()]) == 1
    source.failure = None
    assert positions.save() and positions.get("a") == "e-2"


def test_an_unreadable_file_starts_from_the_streams_current_positions(tmp_path, caplog):
    path = tmp_path / "p.json"
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="shared.stream_positions"):
        positions = StreamPositions(path, Source())
    assert positions.get("a") is None
    assert "not a JSON object" in caplog.text
    path.write_text(json.dumps({"a": "e-1", "b": 7}))
    assert StreamPositions(path, Source()).get("b") is None  # only ids are taken


def test_saves_from_two_threads_never_interleave(tmp_path):
    source = Source()
    positions = StreamPositions(tmp_path / "p.json", source)
    errors: list[BaseException] = []

    def hammer(name: str) -> None:
        try:
            for n in range(200):
                source.ids = {name: f"e-{n}"}
                positions.save()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    json.loads((tmp_path / "p.json").read_text())  # always one whole document
