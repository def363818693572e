"""`python -m firmware.emulator.network --profile esphome --port 0`: simulated network sensors.

Prints `HTTP <base url>`, then `DEVICE <name> <url>` for each simulated device, then `READY`
(flushed). SIGTERM/SIGINT exit 0.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from .dialects import DIALECTS
from .server import NetworkSimulator, is_loopback


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m firmware.emulator.network", description=__doc__.splitlines()[0])
    p.add_argument("--profile", required=True, choices=sorted(DIALECTS), help="the REST dialect to speak")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port (0 = any free one)")
    p.add_argument("--count", type=int, default=1,
                   help="simulated devices; more than one are served under /d0, /d1, ... (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the readings' drift")
    p.add_argument("--no-drift", dest="drift", action="store_false", help="readings stay put unless set")
    p.add_argument("--cover-speed", type=float, default=20.0, help="cover motor speed in %%/s (default 20)")
    args = p.parse_args(argv)
    if not 1 <= args.count <= 10_000:
        p.error("--count must be 1..10000")
    if not 0 <= args.port <= 65535:
        p.error("--port must be 0..65535")
    if not is_loopback(args.host):
        p.error(f"--host must be a loopback address, not {args.host!r}")
    if not 0.1 <= args.cover_speed <= 100_000:
        p.error("--cover-speed must be 0.1..100000 %/s")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sim = NetworkSimulator(args.profile, count=args.count, host=args.host, port=args.port, seed=args.seed,
                               drift=args.drift, cover_speed=args.cover_speed).start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"HTTP {sim.base}", flush=True)
    if args.count > 1:
        for name, url in zip(sim.devices, sim.urls, strict=True):
            print(f"DEVICE {name} {url}", flush=True)
    print("READY", flush=True)
    stop.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
