"""`make run`: the whole connector on this machine, under supervisord in the foreground.

Starts what exists, says what it does not start and why, and never fails silently:
- a private Mosquitto on loopback unless MQTT_HOST is set (port 1884, or a free one when 1884
  is taken; PRIVATE_BROKER_PORT chooses);
- one firmware emulator per serial board whose port is a local path with no real device behind it,
  linked at that path, so the connector runs end to end without hardware;
- one network-sensor simulator per HTTP endpoint whose URL is on 127.0.0.1/localhost with a free
  port, speaking the endpoint's profile (``python -m firmware.emulator.network``);
- the services and the MQTT bridge, each only when its code is present.

``python -m scripts.run_local --dry-run`` prints the generated supervisord config instead of running it.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shared.api_token import ENV_NAME
from shared.config import DEFAULT_PORTS, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_BROKER_PORT = 1884
STOP_WAIT_S = 3
"""supervisord's ``stopwaitsecs``: above every program's own stop deadline (the bridge's 1.5 s, a
service's 2 s of graceful time, shared/server.py), so only a program that hangs past it is killed."""


@dataclass
class Program:
    name: str
    command: list[str]
    priority: int = 100
    environment: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    """Programs of one group stop together; supervisord stops the groups one after the other."""


@dataclass
class Plan:
    programs: list[Program]
    notes: list[str]
    mqtt_host: str
    mqtt_port: int
    run_dir: Path


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_broker_port(host: str = "127.0.0.1") -> int:
    if port_is_free(host, PRIVATE_BROKER_PORT):
        return PRIVATE_BROKER_PORT
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def is_local_device_path(port: str) -> bool:
    """A path the emulator can stand in for (not a socket://, rfc2217:// or loop:// URL)."""
    return "://" not in port and port.startswith("/")


def local_endpoint_port(url: str) -> int | None:
    """The port of an endpoint the simulator can stand in for: plain http on loopback, at the root."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost") or parts.path not in ("", "/"):
        return None
    try:
        return parts.port or 80
    except ValueError:
        return None


def plan(settings: Settings, environ: dict[str, str], python: str = sys.executable) -> Plan:
    run_dir = settings.run_dir.resolve()
    notes: list[str] = []
    programs: list[Program] = []

    if environ.get("MQTT_HOST"):
        mqtt_host, mqtt_port = environ["MQTT_HOST"], settings.mqtt.port
        notes.append(f"MQTT broker: {mqtt_host}:{mqtt_port} (from MQTT_HOST/MQTT_PORT)")
    else:
        mosquitto = shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto")
        if mosquitto is None:
            raise SystemExit("error: mosquitto is not installed and MQTT_HOST is not set: run `make run` "
                             "(it installs Debian's mosquitto package) or point MQTT_HOST at a broker")
        wanted = environ.get("PRIVATE_BROKER_PORT")
        mqtt_host, mqtt_port = "127.0.0.1", int(wanted) if wanted else pick_broker_port()
        conf = run_dir / "mosquitto.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n"
                        # small publishes otherwise wait ~40 ms behind the PUBACK before them (Nagle)
                        "set_tcp_nodelay true\n")
        programs.append(Program("mosquitto", [mosquitto, "-c", str(conf)], priority=10))
        notes.append(f"MQTT broker: private mosquitto on 127.0.0.1:{mqtt_port} "
                     f"(watch: mosquitto_sub -h 127.0.0.1 -p {mqtt_port} -v -t '{settings.mqtt.base_topic}/#')")

    emulate = environ.get("EMULATE", "auto").lower() not in ("0", "false", "no", "off")
    emulator_code = ROOT / "firmware" / "emulator" / "__main__.py"
    for index, board in enumerate(settings.boards):
        if not board.enabled:
            notes.append(f"board {board.board_id}: disabled in the config")
            continue
        real_device = Path(board.port).exists() and not Path(board.port).is_symlink()
        if not emulate or not is_local_device_path(board.port) or real_device:
            notes.append(f"board {board.board_id}: using {board.port}")
            continue
        if not emulator_code.exists():
            notes.append(f"board {board.board_id}: not emulated (firmware/emulator is not built yet)")
            continue
        control = run_dir / f"emulator-{board.board_id}.sock"
        programs.append(Program(f"emulator-{board.board_id}", [
            python, "-m", "firmware.emulator", "--link", board.port, "--board-id", board.board_id,
            "--control", str(control), "--seed", str(index + 1), "--interval-ms", "5000"], priority=20,
            group="devices"))
        notes.append(f"board {board.board_id}: emulated ESP32 at {board.port} "
                     f"(control socket {control})")

    simulator_code = ROOT / "firmware" / "emulator" / "network" / "__main__.py"
    for index, endpoint in enumerate(settings.endpoints):
        port = local_endpoint_port(endpoint.url)
        if not endpoint.enabled:
            notes.append(f"endpoint {endpoint.endpoint_id}: disabled in the config")
        elif not emulate or port is None or not simulator_code.exists():
            notes.append(f"endpoint {endpoint.endpoint_id}: polling {endpoint.url} ({endpoint.profile})")
        elif not port_is_free("127.0.0.1", port):
            notes.append(f"endpoint {endpoint.endpoint_id}: polling {endpoint.url} (something listens there already)")
        else:
            programs.append(Program(f"simulator-{endpoint.endpoint_id}", [
                python, "-m", "firmware.emulator.network", "--profile", endpoint.profile, "--port", str(port),
                "--seed", str(index + 1)], priority=20, group="devices"))
            notes.append(f"endpoint {endpoint.endpoint_id}: simulated {endpoint.profile} device at {endpoint.url} "
                         f"(set values: curl -X POST {endpoint.url}/_sim/set -d '{{\"temperature\": 25}}')")

    for name in DEFAULT_PORTS:
        address = settings.service(name)
        if not (ROOT / "services" / name / "__main__.py").exists():
            owned = len(settings.devices_of(name))
            notes.append(f"{name}: not started (services/{name} is not built yet"
                         + (f"; its {owned} device(s) show as unavailable" if owned else "") + ")")
            continue
        if not port_is_free(address.host, address.port):
            raise SystemExit(f"error: {name} cannot listen on {address.host}:{address.port}: the port is in use "
                             f"(another `make run`?); stop it or change config.services.{name}.port")
        programs.append(Program(name, [python, "-m", f"services.{name}"], priority=30, group="services"))
        notes.append(f"{name}: {address.url}")

    if (ROOT / "mqtt_bridge.py").exists():
        programs.append(Program("mqtt_bridge", [python, str(ROOT / "mqtt_bridge.py")], priority=40))
        notes.append(f"mqtt_bridge: topics under {settings.mqtt.base_topic}/v1/instances/{settings.instance_id}/")
    else:
        notes.append("mqtt_bridge: not started (mqtt_bridge.py is not built yet)")

    notes.append(f"status page: {settings.service('state_aggregator').url}/")
    notes.append(state_changing_calls(settings))

    common = {"INSTANCE_NAME": settings.instance_id, "INSTANCES_DIR": str(settings.instances_dir.resolve()),
              "DATA_DIR": str(settings.data_dir.resolve()), "MQTT_HOST": mqtt_host, "MQTT_PORT": str(mqtt_port),
              "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    for program in programs:
        program.environment = {**common, **program.environment}
    return Plan(programs, notes, mqtt_host, mqtt_port, run_dir)


def _quote(value: str) -> str:
    # supervisord environment values: quote and escape so paths with spaces or commas survive.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def supervisord_config(the_plan: Plan) -> str:
    run_dir = the_plan.run_dir
    lines = [
        "; generated by `make run` (scripts/run_local.py); edits are overwritten",
        "[supervisord]", "nodaemon=true", f"logfile={run_dir / 'supervisord.log'}", "logfile_maxbytes=1MB",
        f"pidfile={run_dir / 'supervisord.pid'}", "loglevel=info",
        # Say so when we run as root on purpose (a container, a dev box); supervisord warns otherwise.
        *(["user=root"] if os.geteuid() == 0 else []), "",
        "[unix_http_server]", f"file={run_dir / 'supervisor.sock'}", "chmod=0700", "",
        "[supervisorctl]", f"serverurl=unix://{run_dir / 'supervisor.sock'}", "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
    ]
    for program in the_plan.programs:
        env = ",".join(f"{k}={_quote(v)}" for k, v in program.environment.items())
        lines += [
            f"[program:{program.name}]",
            "command=" + " ".join(_shell_word(w) for w in program.command),
            f"directory={ROOT}", f"priority={program.priority}", "autorestart=true", "startsecs=1",
            # TERM to the program only (it stops its own threads and streams); a KILL, should it
            # come to that, to its whole process group, so nothing it started outlives it.
            "startretries=5", "stopsignal=TERM", f"stopwaitsecs={STOP_WAIT_S}", "stopasgroup=false",
            "killasgroup=true", "stdout_logfile=/dev/stdout", "stdout_logfile_maxbytes=0", "redirect_stderr=true",
            f"environment={env}", "",
        ]
    # supervisord stops one group at a time, and a program outside a [group:] is a group of its own
    # (whatever its priority), so each program alone would cost up to a second of its poll loop:
    # the services stop together after the bridge, then the simulated devices, then the broker.
    groups: dict[str, list[Program]] = {}
    for program in the_plan.programs:
        if program.group is not None:
            groups.setdefault(program.group, []).append(program)
    for group, members in groups.items():
        lines += [f"[group:{group}]", "programs=" + ",".join(p.name for p in members),
                  f"priority={members[0].priority}", ""]
    return "\n".join(lines)


def _shell_word(word: str) -> str:
    return word if word and all(c.isalnum() or c in "/._-=:" for c in word) else _quote(word)


def state_changing_calls(settings: Settings) -> str:
    """How to curl a state-changing call with the instance's API token (never the token itself)."""
    token = settings.api_token
    if token is None or ENV_NAME in token.where:
        source = f"${ENV_NAME}"
    elif token.where.startswith("given as"):
        source = "<api_token of the creds secret>"
    else:
        source = f"$(cat {shlex.quote(token.where)})"
    return (f'state-changing calls: curl -H "Authorization: Bearer {source}" -X POST '
            f"{settings.service('state_aggregator').url}/device/<device_id>/cmd -d '{{\"state\": \"on\"}}'")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the supervisord config and exit")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    environ.setdefault("INSTANCE_NAME", "sensor_hub_01")
    try:
        settings = load_settings(environ)
    except ConfigError as exc:
        print(f"error: the instance config is not valid\n{exc}", file=sys.stderr)
        return 1
    the_plan = plan(settings, environ)
    config = supervisord_config(the_plan)
    if args.dry_run:
        print(config)
        return 0
    the_plan.run_dir.mkdir(parents=True, exist_ok=True)
    conf_path = the_plan.run_dir / "supervisord.conf"
    conf_path.write_text(config)
    print(f"sensor-hub: instance {settings.instance_id} from {settings.config_file}", flush=True)
    for note in the_plan.notes:
        print(f"  {note}", flush=True)
    print(f"  supervisord config: {conf_path} (Ctrl-C stops everything)", flush=True)
    supervisord = Path(sys.executable).with_name("supervisord")
    os.execv(str(supervisord), [str(supervisord), "-n", "-c", str(conf_path)])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
