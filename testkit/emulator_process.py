"""Start `python -m firmware.emulator` as a subprocess and talk to it like the host would."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import serial

from firmware.esp32.sensorhub.protocol import MAX_LINE
from testkit.example import ROOT
from testkit.helpers import wait_for


class EmulatorProcess:
    def __init__(self, *args: str, control: bool = True, link: bool = True) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fwemu-", dir="/tmp"))  # short: UNIX socket paths are limited
        self.link = self.dir / "dev" / "ttyUSB0" if link else None
        self.control_path = self.dir / "control.sock" if control else None
        cmd = [sys.executable, "-m", "firmware.emulator", *args]
        if self.link:
            cmd += ["--link", str(self.link)]
        if self.control_path:
            cmd += ["--control", str(self.control_path)]
        # stderr goes to a file: an unread pipe could fill up and block the emulator.
        self.stderr_path = self.dir / "stderr.log"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.banner: list[str] = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                raise RuntimeError(f"emulator exited: {self.stderr_path.read_text()}")
            self.banner.append(line.strip())
            if line.strip() == "READY":
                break
        self.pty = self.banner[0].split(" ", 1)[1]
        self.http_port = next((int(b.rsplit(":", 1)[1]) for b in self.banner if b.startswith("HTTP ")), None)
        self._sock: socket.socket | None = None
        self._sock_file = None

    def control(self, request: dict, timeout: float = 10.0) -> dict:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(timeout)
            self._sock.connect(str(self.control_path))
            self._sock_file = self._sock.makefile("rb")
        self._sock.sendall((json.dumps(request) + "\n").encode())
        return json.loads(self._sock_file.readline())

    def stop(self) -> int:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc.stdout.close()
        self._stderr.close()
        self.stderr = self.stderr_path.read_text()
        shutil.rmtree(self.dir, ignore_errors=True)
        return code


class HostPort:
    """The host's side: pyserial on the link, a reader thread collecting every line."""

    def __init__(self, path: str | Path) -> None:
        self.serial = serial.Serial(str(path), 115200, timeout=0.1)
        self.lines: list[dict] = []
        self.garbage: list[bytes] = []
        self.closed = False
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = b""
        while not self._stop:
            try:
                data = self.serial.read(4096)
            except (serial.SerialException, OSError, TypeError):
                self.closed = True   # the pty went away (unplug)
                return
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                if len(raw) + 1 > MAX_LINE:
                    self.garbage.append(raw)   # the protocol's limit: a host drops longer lines
                    continue
                try:
                    msg = json.loads(raw)
                except ValueError:
                    self.garbage.append(raw)
                    continue
                if isinstance(msg, dict) and isinstance(msg.get("type"), str):
                    self.lines.append(msg)
                else:
                    self.garbage.append(raw)

    def send(self, msg: dict | bytes) -> None:
        data = msg if isinstance(msg, bytes) else (json.dumps(msg) + "\n").encode()
        self.serial.write(data)
        self.serial.flush()

    def wait_line(self, pred, timeout: float = 10.0, start: int = 0, message: str = "line") -> dict:
        def found():
            for msg in self.lines[start:]:
                if pred(msg):
                    return msg
            return None
        return wait_for(found, timeout=timeout, message=message)

    def command(self, msg: dict, timeout: float = 10.0) -> dict:
        """Send a command with an id; return its ack (or its error line)."""
        mark = len(self.lines)
        self.send(msg)
        return self.wait_line(lambda m: m.get("id") == msg["id"] and m["type"] in ("ack", "error"),
                              timeout, start=mark, message=f"answer to {msg}")

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        try:
            self.serial.close()
        except Exception:  # noqa: BLE001 - already gone after an unplug
            pass


def elapsed(start: float) -> float:
    return time.monotonic() - start


def pty_exists(path: str) -> bool:
    return os.path.exists(path)
