"""SerialLink on a bare pseudo-terminal the test writes to byte by byte (no emulator): exact
control over partial lines, sequence gaps, reboots and a vanishing port."""
from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from services.serial_handler.commands import CommandError
from services.serial_handler.lines import Message
from services.serial_handler.link import SerialLink
from shared.config import BoardSpec
from testkit.helpers import wait_for


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.states: list[tuple[bool, str | None]] = []
        self.problems: list[str] = []

    def on_message(self, link: SerialLink, message: Message) -> None:
        self.messages.append(message)

    def on_state(self, link: SerialLink, online: bool, reason: str | None) -> None:
        self.states.append((online, reason))

    def on_problem(self, link: SerialLink, code: str, message: str) -> None:
        self.problems.append(code)


class Pty:
    """A pty pair: the test plays the board on the master side."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def line(self, **msg: object) -> None:
        self.write((json.dumps(msg, separators=(",", ":")) + "\n").encode())

    def read_commands(self) -> list[dict]:
        os.set_blocking(self.master, False)
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return []
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pty() -> Iterator[Pty]:
    pair = Pty()
    yield pair
    pair.close()


@pytest.fixture
def link_on(pty: Pty) -> Iterator[tuple[SerialLink, Recorder]]:
    recorder = Recorder()
    link = SerialLink(BoardSpec("b1", pty.path, "b1", silence_timeout=30, command_timeout=2, reconnect_max=1),
                      recorder.on_message, recorder.on_state, on_problem=recorder.on_problem).start()
    wait_for(lambda: link.state == "open", 10)
    yield link, recorder
    link.stop()


def test_partial_lines_sequence_gaps_and_reboots(pty: Pty, link_on) -> None:
    link, recorder = link_on
    pty.write(b'{"type":"hello","seq":0,"board_id":"b1","fw":"9.9"}\n{"type":"sensor","se')
    pty.write(b'q":1,"temperature":20.0}\n')
    pty.line(type="sensor", seq=4, temperature=20.5)            # 2 and 3 never arrived
    pty.line(type="sensor", seq=5, humidity=140)                 # out of range: rejected
    pty.write(b"\xff\xfe garbage\r\n")
    pty.line(type="hello", seq=0, board_id="b1", fw="9.9")       # reboot: not loss
    pty.line(type="sensor", seq=1, temperature=21.0)
    wait_for(lambda: link.counters.lines_ok == 5, 10, message="5 good lines")
    c = link.counters
    assert c.lost == 2 and c.reboots == 1
    assert dict(c.rejected) == {"out_of_range": 1, "invalid_utf8": 1}
    assert c.fw == "9.9" and link.online and recorder.states == [(True, None)]
    assert [m.seq for m in recorder.messages] == [0, 1, 4, 0, 1]


def test_concurrent_commands_are_matched_by_id_not_order(pty: Pty, link_on) -> None:
    link, _ = link_on
    pty.line(type="hello", seq=0, board_id="b1")
    wait_for(lambda: link.online, 10)
    answers: dict[str, object] = {}

    def send(name: str) -> None:
        try:
            answers[name] = link.request({"type": "ping"}, 10, cmd_id=name)
        except CommandError as exc:
            answers[name] = exc.code

    threads = [threading.Thread(target=send, args=(f"c{i}",)) for i in range(5)]
    for thread in threads:
        thread.start()
    sent: list[dict] = []
    wait_for(lambda: (sent.extend(c for c in pty.read_commands() if c["type"] == "ping"), len(sent) == 5)[1], 10)
    # Answer in reverse order, one refused and one unknown to the board.
    for seq, command in enumerate(reversed(sent), start=1):
        if command["id"] == "c1":
            pty.line(type="ack", seq=seq, id="c1", ok=False, error="busy")
        elif command["id"] == "c2":
            pty.line(type="error", seq=seq, id="c2", error="unknown_type", message="no")
        else:
            pty.line(type="ack", seq=seq, id=command["id"], ok=True, result={"n": command["id"]})
    for thread in threads:
        thread.join(15)
    assert answers["c0"] == {"cmd_id": "c0", "result": {"n": "c0"}}
    assert answers["c3"] == {"cmd_id": "c3", "result": {"n": "c3"}}
    assert answers["c1"] == "REJECTED" and answers["c2"] == "UNSUPPORTED"


def test_a_vanished_port_fails_pending_commands_and_goes_offline(pty: Pty, link_on) -> None:
    link, recorder = link_on
    pty.line(type="hello", seq=0, board_id="b1")
    wait_for(lambda: link.online, 10)
    result: list[str] = []

    def send() -> None:
        try:
            link.request({"type": "ping"}, 30)
        except CommandError as exc:
            result.append(exc.code)

    thread = threading.Thread(target=send)
    thread.start()
    wait_for(lambda: link.counters.commands == 1, 10)
    pty.close()  # the adapter is pulled out
    thread.join(15)
    assert result == ["OFFLINE"]
    wait_for(lambda: recorder.states and recorder.states[-1][0] is False, 10)
    assert "BOARD_OFFLINE" in recorder.problems and not link.online
    with pytest.raises(CommandError) as info:
        link.request({"type": "ping"}, 30)
    assert info.value.code == "OFFLINE"


def test_pyserial_urls_work_too() -> None:
    """``loop://`` echoes what we write: our own hello comes back, without a seq, as a rejected line."""
    recorder = Recorder()
    link = SerialLink(BoardSpec("lb", "loop://", "lb"), recorder.on_message, recorder.on_state).start()
    try:
        wait_for(lambda: link.counters.rejected.get("missing_field") == 1, 10)
        assert link.state == "open" and link.counters.opens == 1
    finally:
        link.stop()


def test_a_board_behind_socket_url_answers_commands() -> None:
    """``socket://`` (a serial-to-TCP bridge such as ser2net): a loopback server plays the board."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def board() -> None:
        connection, _ = server.accept()
        with connection, connection.makefile("rwb") as stream:
            # pyserial's socket:// open() discards whatever already arrived, so this boot hello
            # may be lost; the board answers the host's hello request like the firmware does.
            stream.write(b'{"type":"hello","seq":0,"board_id":"net","fw":"1.0.0"}\n')
            stream.flush()
            seq = 0
            for raw in stream:
                command = json.loads(raw)
                seq += 1
                if command.get("type") == "hello":
                    stream.write(b'{"type":"hello","seq":%d,"id":"%s","board_id":"net","fw":"1.0.0"}\n'
                                 % (seq, command["id"].encode()))
                    stream.flush()
                if command.get("type") == "ping":
                    stream.write(b'{"type":"ack","seq":%d,"id":"%s","ok":true,"result":{"pong":true}}\n'
                                 % (seq, command["id"].encode()))
                    stream.flush()

    threading.Thread(target=board, daemon=True).start()
    recorder = Recorder()
    link = SerialLink(BoardSpec("net", f"socket://127.0.0.1:{port}", "net"), recorder.on_message,
                      recorder.on_state).start()
    try:
        wait_for(lambda: link.online, 10)
        assert link.counters.fw == "1.0.0"
        assert link.request({"type": "ping"}, 10, cmd_id="net-1") == {"cmd_id": "net-1", "result": {"pong": True}}
    finally:
        link.stop()
        server.close()


def test_an_error_while_handling_a_line_does_not_end_the_link(pty: Pty) -> None:
    seen: list[int] = []

    def on_message(link: SerialLink, message: Message) -> None:
        if message.seq == 1:
            raise RuntimeError("a bug in a consumer")
        seen.append(message.seq)

    link = SerialLink(BoardSpec("b1", pty.path, "b1"), on_message, lambda *_: None).start()
    try:
        wait_for(lambda: link.state == "open", 10)
        for seq in range(3):
            pty.line(type="sensor", seq=seq, temperature=20.0)
        wait_for(lambda: seen == [0, 2], 10)
        assert link.state == "online"
    finally:
        link.stop()
