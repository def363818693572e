"""`python -m firmware.emulator.ctl SOCKET REQUEST...`: send control requests to a running emulator.

Each REQUEST is one JSON object (docs/serial-protocol.md, "The emulator"); the emulator's answer
to each is printed as one JSON line. The exit status is 1 when an answer is not ``"ok": true``.
No socat or netcat needed::

    python -m firmware.emulator.ctl data/run/emulator-living_room_esp32.sock '{"set": {"temperature": 30}}'
"""
from __future__ import annotations

import json
import socket
import sys


def send(path: str, requests: list[dict], timeout: float = 10.0) -> list[dict]:
    """Send each request over one connection; the answers in order."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        replies = sock.makefile("rb")
        answers = []
        for request in requests:
            sock.sendall((json.dumps(request) + "\n").encode())
            answers.append(json.loads(replies.readline()))
        return answers


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        requests = [json.loads(text) for text in argv[1:]]
    except ValueError as exc:
        print(f"error: a request is not JSON: {exc}", file=sys.stderr)
        return 2
    try:
        answers = send(argv[0], requests)
    except OSError as exc:
        print(f"error: cannot talk to the emulator at {argv[0]}: {exc}", file=sys.stderr)
        return 1
    for answer in answers:
        print(json.dumps(answer))
    return 0 if all(a.get("ok") for a in answers) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
