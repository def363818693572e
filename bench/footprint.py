"""What the instance costs a small board: PSS and CPU per program, read from ``/proc``.

PSS (``/proc/<pid>/smaps_rollup``) counts a page shared by N processes as 1/N to each, so the
sum over the instance's processes is what the instance really takes (RSS counts shared pages
once per process: 790 MB RSS was 442 MB PSS). CPU is utime + stime (``/proc/<pid>/stat``) over
an interval, in % of one core. A program is the process supervisord started plus its
descendants (a service is one process today; a gunicorn master and its worker were one program).

``Instance`` starts the instance the way ``make run`` does (scripts/run_local.py's plan and
supervisord config, emulated board, simulated HTTP sensors, private broker) on free ports in a
scratch directory; the emulators, simulators and the broker are not the instance and are left
out of the sums.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from testkit.example import ROOT, example_document
from testkit.helpers import free_port, wait_for

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NOT_THE_INSTANCE = ("mosquitto", "emulator-", "simulator-")
"""supervisord programs that stand in for the world around the instance (make run's)."""


def pss_kib(pid: int) -> int | None:
    """The proportional set size of one process, in KiB; None once it is gone."""
    return _rollup(pid, ("Pss:",))


def anonymous_kib(pid: int) -> int | None:
    """The memory no file backs (heap, Python's objects), in KiB: unlike PSS, and unlike the
    private pages, it does not move with what else runs on the machine (another process that maps
    libtorch makes its code pages shared; its exit makes them private again)."""
    return _rollup(pid, ("Anonymous:",))


def _rollup(pid: int, fields: tuple[str, ...]) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return sum(int(line.split()[1]) for line in f if line.startswith(fields))
    except OSError:
        return None


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of one process, in clock ticks; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc/<pid>/task/*/children``)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


@dataclass
class Reading:
    """One program's figures over one interval."""

    pss_mib: float
    cpu_pct: float
    processes: int
    anonymous_mib: float = 0.0


def measure(programs: dict[str, int], seconds: float) -> dict[str, Reading]:
    """PSS at the end and CPU over ``seconds`` of every program (name -> its top pid); the
    processes are listed again at the end, so a worker that started meanwhile counts for its
    PSS but not for CPU it used before it was seen."""
    trees = {name: descendants(pid) for name, pid in programs.items()}
    start = {pid: cpu_ticks(pid) for tree in trees.values() for pid in tree}
    began = time.monotonic()
    time.sleep(seconds)  # the interval measured, not a synchronisation
    wall = time.monotonic() - began
    readings = {}
    for name, pid in programs.items():
        tree = descendants(pid)
        ticks = 0
        pss = anonymous = 0
        for member in tree:
            now = cpu_ticks(member)
            if now is not None and start.get(member) is not None:
                ticks += now - start[member]
            pss += pss_kib(member) or 0
            anonymous += anonymous_kib(member) or 0
        readings[name] = Reading(pss / 1024, 100.0 * ticks / CLOCK_TICKS / wall, len(tree), anonymous / 1024)
    return readings


def total(readings: dict[str, Reading], without: tuple[str, ...] = ()) -> Reading:
    chosen = [r for name, r in readings.items() if name not in without]
    return Reading(sum(r.pss_mib for r in chosen), sum(r.cpu_pct for r in chosen), sum(r.processes for r in chosen),
                   sum(r.anonymous_mib for r in chosen))


def reference_pss_mib(*modules: str) -> float:
    """PSS of a bare interpreter that imported ``modules`` (the ceiling: what one Python process
    with those libraries costs at the least)."""
    return _reference(pss_kib, modules)


def reference_anonymous_mib(*modules: str) -> float:
    """The anonymous memory of a bare interpreter that imported ``modules``."""
    return _reference(anonymous_kib, modules)


def _reference(read: Callable[[int], int | None], modules: tuple[str, ...]) -> float:
    code = "".join(f"import {m}\n" for m in modules)
    code += "import sys; sys.stdout.write('ready\\n'); sys.stdout.flush(); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        return (read(proc.pid) or 0) / 1024
    finally:
        proc.kill()
        proc.wait()


def idle_reference_cpu_pct(seconds: float) -> float:
    """CPU of an interpreter that waits on nothing but an event (the idle ceiling: a floor of
    zero plus what the kernel charges a sleeping process)."""
    proc = subprocess.Popen([sys.executable, "-c", "import threading; threading.Event().wait()"], cwd=ROOT)
    try:
        time.sleep(0.3)  # past its start-up, whose CPU is not idle
        return measure({"reference": proc.pid}, seconds)["reference"].cpu_pct
    finally:
        proc.kill()
        proc.wait()


class Instance:
    """The example instance started as ``make run`` starts it, in ``workdir`` on free ports.

    ``extra`` is merged into the example's config (e.g. more devices); ``ml=False`` leaves
    ml_inference and the automation out."""

    def __init__(self, workdir: Path, ml: bool = True, model: Path | None = None,
                 doc: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        doc = copy.deepcopy(doc or example_document())
        config = doc["config"]
        config["services"] = {name: {"host": "127.0.0.1", "port": free_port()}
                              for name in ("serial_handler", "http_poller", "state_aggregator", "ml_inference")}
        for board in config["serial_ports"]:
            board["port"] = str(workdir / f"tty-{board['board_id']}")
        for endpoint in config["http_endpoints"]:
            endpoint["url"] = f"http://127.0.0.1:{free_port()}"
        if not ml:
            automations = {a["automation_id"] for a in config.get("window_automations", [])}
            config["window_automations"] = []
            doc["devices"] = [d for d in doc["devices"] if d["source"].get("automation") not in automations]
        instances = workdir / "instances"
        instances.mkdir(parents=True, exist_ok=True)
        (instances / f"{doc['instance_id']}.json").write_text(json.dumps(doc, indent=1))
        data = workdir / "data"
        if model is not None:
            (data / "models").mkdir(parents=True, exist_ok=True)
            (data / "models" / "window.pt").write_bytes(model.read_bytes())
        self.doc = doc
        self.ml = ml
        self.env = {**os.environ, "INSTANCE_NAME": doc["instance_id"], "INSTANCES_DIR": str(instances),
                    "DATA_DIR": str(data), "PRIVATE_BROKER_PORT": str(free_port()), "LOG_LEVEL": "WARNING",
                    "IOT2MQTT_PATH": str(workdir)}
        self.aggregator_url = f"http://127.0.0.1:{config['services']['state_aggregator']['port']}"
        self.log = open(workdir / "run.log", "ab")
        self.supervisord = subprocess.Popen([sys.executable, "-m", "scripts.run_local"], cwd=ROOT, env=self.env,
                                            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.run_dir = data / "run"

    def wait_online(self, timeout: float = 90.0) -> None:
        expected = {d["device_id"] for d in self.doc["devices"] if d.get("enabled", True)}

        def online() -> bool:
            if self.supervisord.poll() is not None:
                raise RuntimeError(f"make run's supervisord exited: see {self.workdir / 'run.log'}")
            devices = requests.get(self.aggregator_url + "/devices", timeout=2).json()["devices"]
            return {d["device_id"] for d in devices if d["online"]} >= expected

        wait_for(online, timeout, interval=0.2, message="every device online")
        wait_for(lambda: "mqtt_bridge" in self.programs(), 30, interval=0.2, message="the bridge")

    def programs(self) -> dict[str, int]:
        """Every supervisord program of the instance by name -> its pid (devices and broker left out)."""
        names = {}
        for child in descendants(self.supervisord.pid)[1:]:
            try:
                parent = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if parent != self.supervisord.pid:
                continue
            name = program_name([a.decode(errors="replace") for a in argv if a])
            if name is not None:
                names[name] = child
        return names

    def close(self) -> None:
        if self.supervisord.poll() is None:
            self.supervisord.send_signal(signal.SIGTERM)
            try:
                self.supervisord.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.supervisord.pid, signal.SIGKILL)
                self.supervisord.wait(5)
        self.log.close()


def program_name(argv: list[str]) -> str | None:
    """The instance's program an argv runs (``-m services.<name>``, ``mqtt_bridge.py``); None for
    the emulators, simulators and the broker."""
    if "-m" in argv:
        module = argv[argv.index("-m") + 1] if argv.index("-m") + 1 < len(argv) else ""
        if module.startswith("services."):
            return module.split(".", 1)[1]
        return None
    if any(a.endswith("mqtt_bridge.py") for a in argv):
        return "mqtt_bridge"
    return None
