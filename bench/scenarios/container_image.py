"""The image as the IoT2MQTT platform runs it: its size, cold start, stop, and the memory of an idle instance.

The image is built from the Dockerfile by ``scripts/image.py`` (cached in the engine, before any
clock) and run as the platform runs it (docs/container.md): host network, restart unless-stopped,
the platform's environment, its shared/, instances/ and .env mounted read-only, an emulated board
bind-mounted at /dev/ttyUSB0, a private Mosquitto on loopback.

One cold start is: ``docker create`` (not timed: the platform's ``docker run`` does it once per
instance), then ``docker start`` → ``online`` on the instance's ``status`` topic (and a new
subscriber is checked to get it retained), and → ml_inference answering ``/health`` 200; then every
service answers 200, the PSS of every process is read inside the container, and
``docker stop -t 10`` is timed. Each start uses a fresh container (a first
start: a new /app/data volume), removed afterwards. The ceiling is a trivial container of the same
image: ``python -c`` printing one byte (start → first byte) and exiting on SIGTERM (stop), whose PSS
is what a bare interpreter costs; the same with ``import torch`` is what torch costs.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from bench.fixtures import MqttClient, free_ports, require_files, start_broker, start_emulator
from bench.harness import Context, NotAvailable, Sample, Scenario, at_most

if TYPE_CHECKING:   # imported where used, so that a test can replace connect_engine
    from scripts.image import DockerEngine

IMAGE = "sensor-hub:bench"
INSTANCE_ID = "bench_container"
BASE_TOPIC = "IoT2mqtt"
DIALOUT_GID = 20   # Debian's dialout group, on the host and in the image
SERVICES = ("serial_handler", "http_poller", "state_aggregator", "ml_inference")
PROGRAMS = (*SERVICES, "mqtt_bridge", "supervisord", "stop_on_fatal")
TORCH_PROGRAM = "ml_inference"
PLATFORM_SHARED = ("__init__.py", "base_connector.py", "mqtt_client.py", "discovery.py", "utils.py")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10

# PID 1 ignores SIGTERM unless it installs a handler: this one exits 0 on it, as the instance should.
TRIVIAL = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)); "
           "print(1, flush=True); time.sleep(600)")
WITH_TORCH = "import torch; " + TRIVIAL

# Every process of the container: its stat (for the parent), its command line and its PSS. The
# shell skips itself; the cat processes it forks did not exist when the glob was expanded.
PROCESS_TABLE = ('for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = "$$" ] && continue; '
                 'echo "@@pid $p"; cat $d/stat; echo "@@cmd"; cat $d/cmdline; echo; echo "@@rollup"; '
                 'cat $d/smaps_rollup; done 2>/dev/null')


# --------------------------------------------------------------------------- engine and image


@dataclass
class ImageRig:
    """A Docker engine with the image built; containers carry a label naming this bench process."""

    engine: DockerEngine
    image: str
    base: str | None
    label: str = field(default_factory=lambda: f"sensor-hub-bench={os.getpid()}")
    _names: int = 0

    def docker(self, *args: str, check: bool = True, timeout: float | None = 120) -> subprocess.CompletedProcess:
        return self.engine.docker(*args, check=check, timeout=timeout)

    def new_name(self, kind: str) -> str:
        self._names += 1
        return f"sensor-hub-bench-{os.getpid()}-{kind}-{self._names}"

    def image_mb(self, tag: str) -> float:
        return int(self.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout) / 1e6

    def inspect(self, name: str, template: str) -> str:
        return self.docker("inspect", "--format", template, name).stdout.decode().strip()

    def logs(self, name: str, chars: int = 3000) -> str:
        result = self.docker("logs", name, check=False)
        return (result.stdout + result.stderr).decode(errors="replace")[-chars:]

    def remove(self, name: str) -> None:
        self.docker("rm", "-f", "-v", name, check=False)

    def remove_all(self) -> None:
        listed = self.docker("ps", "-aq", "--filter", f"label={self.label}", check=False).stdout.decode().split()
        if listed:
            self.docker("rm", "-f", "-v", *listed, check=False)

    def others_running(self) -> int:
        """Containers on the engine that are not this bench's: those of the same layers share the
        image's files, which lowers every PSS figure (a page shared by n processes counts 1/n)."""
        running = set(self.docker("ps", "-q", check=False).stdout.decode().split())
        ours = set(self.docker("ps", "-q", "--filter", f"label={self.label}", check=False).stdout.decode().split())
        return len(running - ours)

    def timed_stop(self, name: str) -> tuple[float, int]:
        """``docker stop -t 10``: its wall time and the container's exit code (137 = killed)."""
        started = time.perf_counter()
        self.docker("stop", "-t", str(STOP_TIMEOUT_S), name, timeout=STOP_TIMEOUT_S + 30)
        took = time.perf_counter() - started
        return took, int(self.inspect(name, "{{.State.ExitCode}}"))


def image_rig(ctx: Context) -> ImageRig:
    return ctx.shared("container-image", open_image_rig)


def open_image_rig(scope: Any) -> ImageRig:
    from scripts.image import ImageError, build, connect_engine

    try:
        engine = connect_engine()
    except (ImageError, OSError) as exc:
        raise NotAvailable(f"a Docker engine ({exc})") from None
    scope.cleanup.callback(release_engine, engine)
    try:
        build(engine, IMAGE)
    except (ImageError, OSError, subprocess.SubprocessError) as exc:
        raise NotAvailable(f"the image cannot be built here ({str(exc)[-500:]})") from None
    rig = ImageRig(engine, IMAGE, base_image(engine))
    scope.cleanup.callback(rig.remove_all)
    return rig


def base_image(engine: DockerEngine) -> str | None:
    """The base the build used (scripts.image.choose_base, without pulling again)."""
    from scripts.image import DEFAULT_BASE, LOCAL_BASE

    for tag in (os.environ.get("BASE_IMAGE"), DEFAULT_BASE, LOCAL_BASE):
        if tag and engine.has_image(tag):
            return tag
    return None


def release_engine(engine: DockerEngine) -> None:
    """Stop a private engine started here, unless someone else's containers run on it now."""
    if engine.process is None:
        return
    if engine.docker("ps", "-q", check=False).stdout.decode().split():
        return
    engine.stop()


# --------------------------------------------------------------------------- the platform's side


def platform_folder(root: Path, broker_port: int, doc: dict[str, Any]) -> Path:
    """What the platform mounts: its own shared/ (a stand-in), the instances and its .env."""
    shared = root / "shared"
    shared.mkdir(parents=True)
    for name in PLATFORM_SHARED:
        (shared / name).write_text(f'"""Stand-in for the platform\'s {name}."""\nPLATFORM = True\n')
    (root / "instances").mkdir()
    (root / "instances" / f"{doc['instance_id']}.json").write_text(json.dumps(doc, indent=2))
    (root / ".env").write_text(f"MQTT_HOST=127.0.0.1\nMQTT_PORT={broker_port}\nMQTT_BASE_TOPIC={BASE_TOPIC}\n"
                               "LOG_LEVEL=INFO\n")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the image's non-root user
    return root


def instance_document(ports: dict[str, int], board: str = "board") -> dict[str, Any]:
    """One board with a temperature sensor, a window and an LED, on /dev/ttyUSB0 in the container."""
    return {
        "instance_id": INSTANCE_ID, "connector_type": "sensor-hub", "friendly_name": "bench container",
        "update_interval": 60,
        "devices": [
            {"device_id": f"{board}_temperature", "type": "temperature", "source": {"board": board}},
            {"device_id": f"{board}_window", "type": "window", "source": {"board": board}},
            {"device_id": f"{board}_led", "type": "led", "source": {"board": board}},
        ],
        "config": {
            "serial_ports": [{"board_id": board, "port": "/dev/ttyUSB0", "command_timeout": 5}],
            "services": {name: {"port": port} for name, port in ports.items()},
        },
    }


def as_serial_adapter(pty: str) -> str:
    """The emulator's pty owned like a USB serial adapter (root:dialout, 0660), or open to all."""
    try:
        os.chown(pty, 0, DIALOUT_GID)
        os.chmod(pty, 0o660)
    except PermissionError:
        os.chmod(pty, 0o666)
    return pty


class StatusWatch:
    """The instance's ``status`` topic: when ``online`` arrives after ``arm()``."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.topic = f"{BASE_TOPIC}/v1/instances/{INSTANCE_ID}/status"
        self.online = threading.Event()
        self.online_at = 0.0
        self.client = MqttClient(broker_port, "container-status")
        self.client.subscribe(self.topic, self._on_status)

    def _on_status(self, message: Any, at: float) -> None:
        if message.payload == b"online" and not self.online.is_set():
            self.online_at = at
            self.online.set()

    def arm(self) -> None:
        self.online.clear()

    def retained_online(self, timeout: float = 5.0) -> bool:
        """A new subscriber gets ``online`` as the retained value (what a controller joining sees)."""
        got = threading.Event()
        seen: list[tuple[bytes, bool]] = []

        def first(message: Any, at: float) -> None:
            seen.append((message.payload, bool(message.retain)))
            got.set()

        late = MqttClient(self.broker_port, "container-retained")
        try:
            late.subscribe(self.topic, first)
            got.wait(timeout)
        finally:
            late.close()
        return bool(seen) and seen[0] == (b"online", True)

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------- measurements


@dataclass
class ColdStart:
    online_s: float
    ml_ready_s: float
    stop_s: float
    exit_code: int
    retained: bool
    pss_mib: dict[str, float]


@dataclass
class TrivialRun:
    first_output_s: float
    stop_s: float
    exit_code: int
    pss_mib: float


def program_pss(table: bytes) -> dict[str, float]:
    """PSS (MiB) per program from the container's process table: each process counts for the
    child of PID 1 it descends from (a gunicorn worker for its master), PID 1 is supervisord;
    processes started by ``docker exec`` (no parent in the container) are left out."""
    processes: dict[int, tuple[int, str, float]] = {}
    for block in table.split(b"@@pid ")[1:]:
        head, _, rest = block.partition(b"\n")
        stat, _, rest = rest.partition(b"@@cmd\n")
        cmdline, _, rollup = rest.partition(b"@@rollup\n")
        pss_kib = next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith(b"Pss:")), None)
        after_name = stat[stat.rfind(b")") + 2:].split()
        if pss_kib is None or len(after_name) < 2:
            continue   # gone while the table was read, or not readable
        command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
        processes[int(head)] = (int(after_name[1]), command, pss_kib / 1024)
    totals: dict[str, float] = {}
    for pid, (_, _, pss) in processes.items():
        top = pid
        while top in processes and top != 1 and processes[top][0] not in (0, 1):
            top = processes[top][0]
        if top not in processes or (top != 1 and processes[top][0] == 0):
            continue
        name = "supervisord" if top == 1 else program_name(processes[top][1])
        totals[name] = totals.get(name, 0.0) + pss
    return totals


def program_name(command: str) -> str:
    words = command.split()
    for word in words:
        if word.startswith("services."):
            return word.split(".")[1]
        if word == "scripts.stop_on_fatal":
            return "stop_on_fatal"
        if word.endswith("mqtt_bridge.py"):
            return "mqtt_bridge"
    return Path(words[0]).name if words else "?"


class InstanceRunner:
    """Fresh containers of one instance, started and stopped the way the platform does it."""

    def __init__(self, rig: ImageRig, platform: Path, board_pty: str, ports: dict[str, int],
                 status: StatusWatch) -> None:
        self.rig = rig
        self.platform = platform
        self.board_pty = board_pty
        self.ports = ports
        self.status = status

    def create(self) -> str:
        name = self.rig.new_name("instance")
        self.rig.docker(
            "create", "--name", name, "--label", self.rig.label, "--network", "host",
            "--restart", "unless-stopped",
            "-e", f"INSTANCE_NAME={INSTANCE_ID}", "-e", "CONNECTOR_TYPE=sensor-hub", "-e", "MODE=production",
            "-e", "PYTHONUNBUFFERED=1", "-e", "IOT2MQTT_PATH=/app",
            "-v", f"{self.platform / 'shared'}:/app/shared:ro",
            "-v", f"{self.platform / 'instances'}:/app/instances:ro",
            "-v", f"{self.platform / '.env'}:/app/.env:ro",
            # A pty opens only through its own devpts mount, so the emulated board is bind-mounted
            # where a real one would be passed with --device (as tests/container does).
            "-v", f"{self.board_pty}:/dev/ttyUSB0",
            self.rig.image)
        return name

    def health(self, service: str) -> int:
        try:
            return requests.get(f"http://127.0.0.1:{self.ports[service]}/health", timeout=2).status_code
        except requests.RequestException:
            return 0

    def cold_start(self) -> ColdStart:
        """A fresh container: started and timed to ready, measured idle, stopped, removed."""
        name = self.create()
        try:
            online_s, ml_ready_s = self._start(name)
            self._wait(name, time.perf_counter(), lambda: all(self.health(s) == 200 for s in SERVICES),
                       "every service /health 200")
            retained = self.status.retained_online()
            pss = program_pss(self.rig.docker("exec", name, "sh", "-c", PROCESS_TABLE).stdout)
            stop_s, exit_code = self.rig.timed_stop(name)
            return ColdStart(online_s, ml_ready_s, stop_s, exit_code, retained, pss)
        finally:
            self.rig.remove(name)

    def warm_up(self) -> None:
        """A fresh container started to ready and removed (nothing measured, no stop)."""
        name = self.create()
        try:
            self._start(name)
        finally:
            self.rig.remove(name)

    def _start(self, name: str) -> tuple[float, float]:
        """``docker start``, then seconds to ``online`` on MQTT and to ml_inference /health 200."""
        self.status.arm()
        started = time.perf_counter()
        self.rig.docker("start", name)
        ml_ready_at = self._wait(name, started, lambda: self.health("ml_inference") == 200,
                                 "ml_inference /health 200")
        self._wait(name, started, self.status.online.is_set, "status online on MQTT")
        return self.status.online_at - started, ml_ready_at - started

    def _wait(self, name: str, started: float, condition: Callable[[], bool], what: str) -> float:
        """The time ``condition`` first held (polled every 20 ms). A deadline, or a container
        found stopped (looked at every 5 s), ends the wait with a diagnosis."""
        looked = started
        while not condition():
            now = time.perf_counter()
            stopped = now - looked > 5 and self._exited(name)
            looked = now if now - looked > 5 else looked
            if stopped or now - started > READY_TIMEOUT_S:
                why = "the container stopped" if stopped else f"not within {READY_TIMEOUT_S:.0f} s"
                raise RuntimeError(f"{what}: {why}; {self._diagnosis(name)}")
            time.sleep(0.02)
        return time.perf_counter()

    def _diagnosis(self, name: str) -> str:
        """What went wrong, short enough for the report's table: every /health that is not 200
        and the last error line of the container's log (the whole log goes to the console)."""
        logs = self.rig.logs(name, chars=20_000)
        print(f"--- docker logs {name} (last 20,000 characters)\n{logs}", flush=True)
        unhealthy = []
        for service in SERVICES:
            try:
                response = requests.get(f"http://127.0.0.1:{self.ports[service]}/health", timeout=2)
                if response.status_code != 200:
                    unhealthy.append(f"{service} {response.status_code} {response.text.strip()[:200]}")
            except requests.RequestException as exc:
                unhealthy.append(f"{service} {type(exc).__name__}")
        errors = [line for line in logs.splitlines() if " ERROR " in line or "Error" in line]
        return (f"/health: {'; '.join(unhealthy) or 'all 200'}; last error logged: "
                f"{errors[-1].strip()[:300] if errors else 'none'}")

    def _exited(self, name: str) -> bool:
        return self.rig.inspect(name, "{{.State.Status}}") != "running"


def trivial_run(rig: ImageRig, code: str) -> TrivialRun:
    """A container of the image running ``python -c code``: start → first byte, its PSS, stop."""
    name = rig.new_name("trivial")
    rig.docker("create", "--name", name, "--label", rig.label, "--network", "host", rig.image, "python", "-c", code)
    attached: subprocess.Popen | None = None
    try:
        started = time.perf_counter()
        attached = subprocess.Popen(["docker", "start", "-a", name], env=rig.engine.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert attached.stdout is not None
        first = attached.stdout.read(1)
        first_output_s = time.perf_counter() - started
        if not first:
            raise RuntimeError(f"python -c in {rig.image} printed nothing: {rig.logs(name)}")
        rollup = rig.docker("exec", name, "cat", "/proc/1/smaps_rollup").stdout
        pss_kib = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith(b"Pss:"))
        stop_s, exit_code = rig.timed_stop(name)
        return TrivialRun(first_output_s, stop_s, exit_code, pss_kib / 1024)
    finally:
        if attached is not None:
            attached.kill()
            attached.wait(10)
            if attached.stdout is not None:
                attached.stdout.close()
        rig.remove(name)


# --------------------------------------------------------------------------- the scenario


def setup(ctx: Context) -> InstanceRunner:
    require_files("Dockerfile", "scripts/image.py", "supervisord.conf", "scripts/container_start.py")
    built = time.perf_counter()
    rig = image_rig(ctx)
    built = time.perf_counter() - built
    ctx.cleanup.callback(rig.remove_all)
    broker = start_broker(ctx)
    board = start_emulator(ctx, "board", interval_ms=1000)
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    platform = platform_folder(ctx.workdir / "iot2mqtt", broker.port, instance_document(ports))
    status = StatusWatch(broker.port)
    ctx.cleanup.callback(status.close)
    runner = InstanceRunner(rig, platform, as_serial_adapter(board.pty), ports, status)
    runner.warm_up()   # discarded: the image's files into the page cache
    note_other_containers(ctx, rig)
    ctx.note(f"{ctx.params['starts']} cold starts after a discarded one, each a fresh container of {IMAGE} "
             f"(base {rig.base or 'unknown'}; engine and build {built:.0f} s, before any clock) with the "
             "platform's flags, an emulated board (a reading a second) "
             "and a private Mosquitto; times from `docker start` (after an untimed `docker create`): to the "
             "`online` status on MQTT, to ml_inference /health 200 (polled every 20 ms); medians and maxima")
    ctx.note("stop: `docker stop -t 10` of the idle instance, and the worst exit code (0 clean, 137 killed); "
             "online retained: the share of starts where a new subscriber got `online` as the retained status")
    ctx.note("PSS (proportional set size: a page shared by n processes counts 1/n in each) of every process of "
             "the idle instance, read inside the container once every service answered /health 200; summed per "
             "program (a service is one process); medians over the starts")
    ctx.note("ceiling (same image, same run): a trivial container, `python -c` printing one byte and exiting "
             "on SIGTERM: start → first byte (ceiling of both start figures), its stop, its PSS (ceiling of each "
             "program); `import torch` in the same (ceiling of ml_inference); the total's ceiling is one bare "
             f"interpreter per program and torch in one ({len(PROGRAMS)} programs); the image's ceiling is its base")
    return runner


def run(ctx: Context, runner: InstanceRunner) -> Sample:
    starts = [runner.cold_start() for _ in range(ctx.params["starts"])]
    online = [s.online_s for s in starts]
    ml_ready = [s.ml_ready_s for s in starts]
    stops = [s.stop_s for s in starts]
    figures = {
        "image_mb": runner.rig.image_mb(runner.rig.image),
        "start_to_online_s": statistics.median(online), "start_to_online_max_s": max(online),
        "start_to_ml_ready_s": statistics.median(ml_ready), "start_to_ml_ready_max_s": max(ml_ready),
        "stop_s": statistics.median(stops), "stop_max_s": max(stops),
        "stop_exit_code": float(max(s.exit_code for s in starts)),
        "online_retained": sum(s.retained for s in starts) / len(starts),
    }
    for program in sorted({p for s in starts for p in s.pss_mib}):
        figures[f"pss_{program}_mib"] = statistics.median(s.pss_mib.get(program, 0.0) for s in starts)
    figures["pss_total_mib"] = statistics.median(sum(s.pss_mib.values()) for s in starts)
    return Sample(figures=figures)


def note_other_containers(ctx: Context, rig: ImageRig) -> None:
    others = rig.others_running()
    if others:
        ctx.note(f"{others} other container(s) were running on the engine: they compete for the CPU, and those "
                 "of the same layers share the image's files, which lowers every PSS figure")


def trivial_container(ctx: Context) -> dict[str, float]:
    """Ceiling: a trivial container of the same image (start → first byte, stop, PSS), the same
    with ``import torch``, and the base image's size."""
    rig = image_rig(ctx)
    bare = [trivial_run(rig, TRIVIAL) for _ in range(ctx.params["starts"])]
    torch = trivial_run(rig, WITH_TORCH)
    note_other_containers(ctx, rig)
    python_mib = statistics.median(r.pss_mib for r in bare)
    figures = {
        "first_output_s": statistics.median(r.first_output_s for r in bare),
        "first_output_max_s": max(r.first_output_s for r in bare),
        "stop_s": statistics.median(r.stop_s for r in bare), "stop_max_s": max(r.stop_s for r in bare),
        "stop_exit_code": float(max(r.exit_code for r in bare)),
        "pss_python_mib": python_mib, "pss_torch_mib": torch.pss_mib,
        "pss_floor_total_mib": python_mib * (len(PROGRAMS) - 1) + torch.pss_mib,
    }
    if rig.base:
        figures["base_image_mb"] = rig.image_mb(rig.base)
    return figures


PSS_FIGURES = tuple(f"pss_{p}_mib" for p in PROGRAMS)

SCENARIO = Scenario(
    "container_image", title="the image as IoT2MQTT runs it: size, cold start, stop, idle memory (PSS)",
    setup=setup, run=run, baseline=trivial_container,
    baseline_figures={
        "image_mb": "base_image_mb",
        "start_to_online_s": "first_output_s", "start_to_online_max_s": "first_output_max_s",
        "start_to_ml_ready_s": "first_output_s", "start_to_ml_ready_max_s": "first_output_max_s",
        "stop_s": "stop_s", "stop_max_s": "stop_max_s",
        **{f: ("pss_torch_mib" if f == f"pss_{TORCH_PROGRAM}_mib" else "pss_python_mib") for f in PSS_FIGURES},
        "pss_total_mib": "pss_floor_total_mib",
    },
    targets={"start_to_online_s": at_most(3), "start_to_ml_ready_s": at_most(8), "stop_s": at_most(5),
             "stop_exit_code": at_most(0)},
    # One measured round of several cold starts (medians and maxima need them in one sample); the
    # warm-up is one discarded start in setup, not a whole round.
    rounds={"quick": 1, "full": 1}, warmup=False,
    quick={"starts": 3}, full={"starts": 10},
    figures=("image_mb", "start_to_online_s", "start_to_online_max_s", "start_to_ml_ready_s",
             "start_to_ml_ready_max_s", "stop_s", "stop_max_s", "stop_exit_code", *PSS_FIGURES, "pss_total_mib"),
)
