"""`python -m firmware.emulator`: one simulated board on a pseudo-terminal.

Prints `PTY <path>` first (flushed), then `CONTROL <socket>` / `HTTP <host:port>` when asked for,
then `READY`. SIGTERM/SIGINT exit 0 after removing the link and the control socket.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from firmware.esp32.sensorhub.board import ALL_CAPS, DEFAULT_CAPS

from .control import ControlServer
from .device import Device, Options
from .pty_port import LinkInUse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m firmware.emulator", description=__doc__.splitlines()[0])
    p.add_argument("--link", type=Path, help="make PATH a symlink to the pty (like /dev/ttyUSB0)")
    p.add_argument("--board-id", default="board-1", help="board id in hello (default board-1)")
    p.add_argument("--seed", type=int, help="random seed for reproducible physics")
    p.add_argument("--interval-ms", type=int, help="sensor line interval (default: stored config, 5000)")
    p.add_argument("--boot-noise", action="store_true", help="emit ESP32 ROM-style garbage at every boot")
    p.add_argument("--control", type=Path, help="UNIX socket path for the control channel")
    p.add_argument("--http", type=int, metavar="PORT", help="serve the HTTP mode on 127.0.0.1:PORT (0 = any free)")
    p.add_argument("--motor-speed", type=float, help="window motor speed in %%/s (default 20)")
    p.add_argument("--timestamps", action="store_true", help='add "ts" (epoch float) to sensor lines')
    p.add_argument("--caps", default=",".join(DEFAULT_CAPS),
                   help=f"comma-separated capabilities (default {','.join(DEFAULT_CAPS)}; known: {','.join(ALL_CAPS)})")
    p.add_argument("--motion-rate", type=float, default=12.0,
                   help="simulated motion bursts per hour (0 = only on control request)")
    p.add_argument("--state-dir", type=Path, help="keep the board's flash files here (default: in memory)")
    args = p.parse_args(argv)
    caps = tuple(c.strip() for c in args.caps.split(",") if c.strip())
    unknown = [c for c in caps if c not in ALL_CAPS]
    if unknown:
        p.error(f"unknown capability {unknown[0]!r}; known: {', '.join(ALL_CAPS)}")
    args.caps = caps
    if args.interval_ms is not None and not 1 <= args.interval_ms <= 86_400_000:
        p.error("--interval-ms must be 1..86400000")
    if args.motor_speed is not None and not 0.1 <= args.motor_speed <= 100000:
        p.error("--motor-speed must be 0.1..100000 %/s")
    return args


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> int:
    options = Options(board_id=args.board_id, link=args.link, seed=args.seed, interval_ms=args.interval_ms,
                      boot_noise=args.boot_noise, motor_speed=args.motor_speed, timestamps=args.timestamps,
                      caps=args.caps, motion_per_hour=args.motion_rate, state_dir=args.state_dir,
                      http=args.http is not None)
    device = Device(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        say(f"PTY {device.port.open()}")
    except LinkInUse as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    control = None
    http_server = None
    try:
        if args.control is not None:
            control = ControlServer(device, args.control)
            await control.start()
            say(f"CONTROL {args.control}")
        if args.http is not None:
            from .http_mode import start_http
            http_server, port = await start_http(device, "127.0.0.1", args.http)
            say(f"HTTP 127.0.0.1:{port}")
        say("READY")
        await device.run(stop)
    finally:
        if http_server is not None:
            http_server.close()
        if control is not None:
            await control.close()
        device.port.close()
        device.port.remove_link()
    return 0


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main(args))
    return 0


if __name__ == "__main__":
    sys.exit(run())
