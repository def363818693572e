"""What the instance costs a small board: PSS and CPU of every program, started as ``make run`` does.

The example instance (its board emulated, its HTTP sensors simulated, its window automation and
ml_inference included, a private broker) under supervisord, from scripts/run_local.py's own
plan, on free ports (bench/footprint.py). Three phases, each ``seconds`` long:

- **idle**: the example's own readings only (the board's line every 5 s, each HTTP sensor
  polled every 30 s, the model evaluated every minute);
- **1,000/s**: 1,000 sensor lines a second sent on the board's serial line (the emulator's
  control socket), each reaching MQTT;
- **sustained**: ``sustained_rate`` lines a second, the rate e2e_sustained_throughput carries.

PSS is read at the end of each phase (``/proc/<pid>/smaps_rollup``), CPU is utime + stime over
the phase in % of one core; the emulators, simulators and the broker are not counted. Ceilings
(same run): PSS of bare interpreters that import what each program needs at the least (flask for
each service and the bridge, torch too for ml_inference); idle CPU of a bare interpreter that waits
on an event (so the ratio is about how far from doing nothing the instance is).

torch's code pages (about 80 MiB of libtorch resident after the import) are shared with any other
process that maps the same library, and PSS splits them: ml_inference reads 190 MiB while another
torch process runs on the machine and 230 MiB alone, as on a board. ``anonymous ml inference`` (the
memory no file backs: heap and Python objects) does not move with the neighbours; its ceiling is the
same figure of a bare interpreter that imported flask and torch.
"""
from __future__ import annotations

import time
from pathlib import Path

from bench.fixtures import PipelinedControl, install_default_model, require_files
from bench.footprint import (
    Instance,
    Reading,
    idle_reference_cpu_pct,
    measure,
    reference_anonymous_mib,
    reference_pss_mib,
    total,
)
from bench.harness import Context, Sample, Scenario, at_most
from testkit.helpers import wait_for

ML = "ml_inference"
SERVICE_PARTS = ("services/serial_handler/__main__.py", "services/http_poller/__main__.py",
                 "services/state_aggregator/__main__.py", "services/ml_inference/__main__.py", "mqtt_bridge.py",
                 "firmware/emulator/__main__.py", "scripts/run_local.py")


class Rig:
    def __init__(self, instance: Instance, control: PipelinedControl) -> None:
        self.instance = instance
        self.control = control
        self.value = 0

    def send_for(self, rate: int, seconds: float) -> None:
        """``rate`` sensor lines a second for ``seconds`` on the example's board (unique values,
        so each is a state change all the way to MQTT)."""
        period = 1.0 / rate
        clock = time.perf_counter
        start = clock()
        for index in range(int(rate * seconds)):
            due = start + index * period
            while (now := clock()) < due:
                time.sleep(min(due - now, 0.002))
            self.value = (self.value + 1) % 100_000
            self.control.send({"emit": {"type": "sensor", "temperature": round(-20 + self.value / 1000, 3)}})


def setup(ctx: Context) -> Rig:
    require_files(*SERVICE_PARTS)
    data = ctx.workdir / "model"
    model = install_default_model(ctx, {"DATA_DIR": str(data)})
    instance = Instance(ctx.workdir / "instance", model=model)
    ctx.cleanup.callback(instance.close)
    instance.wait_online()
    board = instance.doc["config"]["serial_ports"][0]["board_id"]
    socket_path = instance.run_dir / f"emulator-{board}.sock"
    wait_for(socket_path.exists, 30, message="the emulator's control socket")
    control = PipelinedControl(Path(socket_path))
    ctx.cleanup.callback(control.close)
    for name, pid in instance.programs().items():
        ctx.track(name, pid)
    ctx.note(f"the example instance as `make run` starts it (supervisord, {len(instance.programs())} programs: "
             f"{', '.join(sorted(instance.programs()))}); emulators, simulators and broker not counted; "
             f"each phase {ctx.params['seconds']} s after {ctx.params['settle_s']} s to settle")
    return Rig(instance, control)


def run(ctx: Context, rig: Rig) -> Sample:
    seconds = ctx.params["seconds"]
    time.sleep(ctx.params["settle_s"])  # start-up work (first polls, model load) is not idle
    phases: dict[str, dict[str, Reading]] = {"idle": measure(rig.instance.programs(), seconds)}
    for phase, rate in (("1000", 1000), ("sustained", ctx.params["sustained_rate"])):
        sender = _in_thread(rig.send_for, rate, seconds + 0.5)
        time.sleep(0.25)  # the load is under way before the interval starts
        phases[phase] = measure(rig.instance.programs(), seconds)
        sender.join()
    sample = Sample()
    for phase, readings in phases.items():
        everything = total(readings)
        without_ml = total(readings, without=(ML,))
        sample.figures[f"{phase}_pss_total_mib"] = everything.pss_mib
        sample.figures[f"{phase}_pss_without_ml_mib"] = without_ml.pss_mib
        sample.figures[f"{phase}_cpu_pct"] = everything.cpu_pct
        if ML in readings:
            sample.figures[f"{phase}_pss_ml_inference_mib"] = readings[ML].pss_mib
            sample.figures[f"{phase}_anonymous_ml_inference_mib"] = readings[ML].anonymous_mib
        rows = ", ".join(f"{name} {r.pss_mib:.1f} MiB {r.cpu_pct:.1f} %" for name, r in sorted(readings.items()))
        ctx.note(f"{phase}: {rows}; total {everything.pss_mib:.1f} MiB PSS ({without_ml.pss_mib:.1f} without "
                 f"{ML}), {everything.cpu_pct:.2f} % of one core")
    return sample


def _in_thread(target, *args):
    import threading

    thread = threading.Thread(target=target, args=args, name="footprint load", daemon=True)
    thread.start()
    return thread


def ceilings(ctx: Context) -> dict[str, float]:
    """PSS of bare interpreters with the least each program imports, and the CPU of one that idles."""
    flask = reference_pss_mib("flask")
    torch = reference_pss_mib("flask", "torch")
    torch_anonymous = reference_anonymous_mib("flask", "torch")
    idle = idle_reference_cpu_pct(min(ctx.params["seconds"], 5.0))
    ctx.note(f"ceilings: a bare interpreter importing flask {flask:.1f} MiB PSS (x4: three services and the "
             f"bridge), flask + torch {torch:.1f} MiB; an idle interpreter {idle:.2f} % CPU")
    without_ml = 4 * flask
    return {**{f"{p}_pss_without_ml_mib": without_ml for p in ("idle", "1000", "sustained")},
            **{f"{p}_pss_total_mib": without_ml + torch for p in ("idle", "1000", "sustained")},
            **{f"{p}_pss_ml_inference_mib": torch for p in ("idle", "1000", "sustained")},
            **{f"{p}_anonymous_ml_inference_mib": torch_anonymous for p in ("idle", "1000", "sustained")},
            "idle_cpu_pct": idle}


SCENARIO = Scenario(
    "e2e_footprint", title="memory (PSS) and CPU of the instance as `make run` starts it",
    setup=setup, run=run, baseline=ceilings,
    targets={"idle_pss_without_ml_mib": at_most(150), "idle_pss_total_mib": at_most(350),
             "idle_pss_ml_inference_mib": at_most(200), "idle_cpu_pct": at_most(2.0),
             "sustained_pss_total_mib": at_most(350)},
    quick={"seconds": 6.0, "settle_s": 5.0, "sustained_rate": 2500},
    full={"seconds": 60.0, "settle_s": 20.0, "sustained_rate": 2500},
    rounds={"quick": 1, "full": 1}, warmup=False,
    figures=("idle_pss_total_mib", "idle_pss_without_ml_mib", "idle_pss_ml_inference_mib",
             "idle_anonymous_ml_inference_mib", "idle_cpu_pct",
             "1000_pss_total_mib", "1000_cpu_pct", "sustained_pss_total_mib", "sustained_cpu_pct"))
