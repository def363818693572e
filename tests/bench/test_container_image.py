"""The container scenario's parts that need no engine: reading the container's process table, and
a machine without Docker reported as not available (no figure is asserted)."""
from __future__ import annotations

from bench.harness import Harness, Options
from bench.scenarios import container_image


def entry(pid: int, ppid: int, command: str, pss_kib: int) -> bytes:
    stat = f"{pid} (python) S {ppid} {pid} {pid} 0 -1 4194560".encode()
    rollup = f"Rss:   {pss_kib * 2} kB\nPss:   {pss_kib} kB\nPss_Anon:  1 kB\n".encode()
    return (f"@@pid {pid}\n".encode() + stat + b"\n@@cmd\n" + command.replace(" ", "\0").encode() + b"\0\n"
            + b"@@rollup\n" + rollup)


def test_process_table_is_summed_per_program_and_leaves_out_docker_exec():
    table = b"".join([
        entry(1, 0, "/opt/sensor-hub/venv/bin/python /opt/sensor-hub/venv/bin/supervisord -n -c x", 1024),
        entry(7, 1, "python -m scripts.stop_on_fatal", 2048),
        entry(8, 1, "python -m services.ml_inference", 1024),
        entry(21, 8, "python -m services.ml_inference", 4096),     # its gunicorn worker
        entry(9, 1, "python mqtt_bridge.py", 3072),
        entry(40, 0, "python -m scripts.healthcheck", 9999),       # a docker exec: not the instance's
        entry(41, 40, "python -c pass", 9999),
        b"@@pid 50\n@@cmd\n@@rollup\n",                             # gone while the table was read
    ])
    assert container_image.program_pss(table) == {"supervisord": 1.0, "stop_on_fatal": 2.0,
                                                   "ml_inference": 5.0, "mqtt_bridge": 3.0}


def test_without_a_docker_engine_the_scenario_is_not_available(monkeypatch):
    import scripts.image

    def no_engine(start: bool = True):
        raise scripts.image.ImageError("no Docker engine answers (tried nothing)")

    monkeypatch.setattr(scripts.image, "connect_engine", no_engine)
    scenario = container_image.SCENARIO
    [result] = Harness({scenario.name: scenario}, Options(verbose=False)).run([scenario.name])
    assert result.status == "not available"
    assert result.reason.startswith("not available yet: a Docker engine (no Docker engine answers")
