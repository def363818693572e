"""`make image`: build the Dockerfile, on a machine with a Docker engine or without one.

- **Engine.** ``DOCKER_HOST`` or the default socket when an engine answers there; otherwise a
  private ``dockerd`` (Debian's docker.io) started on ``/tmp/sensor-hub-docker/docker.sock`` with
  host networking only (no iptables, no bridge: that is what runs inside sandboxes) and the
  overlay2 storage driver, or vfs where overlay mounts are refused (vfs copies the whole file
  system for every layer and container: slow, but it works anywhere). Its images live in
  ``$SENSOR_HUB_CACHE/docker-<driver>`` (default ``~/.cache/sensor-hub``), so later builds reuse
  the layer cache.
- **Base image.** ``BASE_IMAGE`` when set; the Dockerfile's ``python:3.11-slim`` when the engine
  has it or can pull it; otherwise ``sensor-hub-base:bookworm``, built once from Debian packages
  with ``debootstrap`` (Python 3.11, venv, pip and the host's CA bundle).
- **torch.** From the wheel of torch 2.13.0 (CPU) in ``PIP_FIND_LINKS`` when the host has it,
  served to the build on loopback; otherwise from torch's CPU wheel index (the Dockerfile's
  default).

``python -m scripts.image build [--tag T]`` builds and prints the tag and what it used;
``python -m scripts.image engine`` prints the ``DOCKER_HOST`` of a running engine.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TAG = "sensor-hub:latest"
DEFAULT_BASE = "python:3.11-slim"
LOCAL_BASE = "sensor-hub-base:bookworm"
PRIVATE_ENGINE_DIR = Path("/tmp/sensor-hub-docker")  # short: unix socket paths are limited to 108 bytes
WHEEL_PORT = 18765  # fixed, so the build argument (and the layer cache) stays the same between builds
TORCH_WHEEL_GLOB = "torch-2.13.0*cp311*.whl"
DEBIAN_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
STORAGE_DRIVERS = ("overlay2", "vfs")


class ImageError(RuntimeError):
    """The image cannot be built here; the message says what is missing."""


def cache_dir() -> Path:
    return Path(os.environ.get("SENSOR_HUB_CACHE") or Path.home() / ".cache" / "sensor-hub")


@dataclass
class DockerEngine:
    host: str
    process: subprocess.Popen | None = None  # set when this engine was started here

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def docker(self, *args: str, check: bool = True, capture: bool = True, timeout: float | None = None,
               input: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=capture, timeout=timeout,
                                input=input)
        if check and result.returncode != 0:
            detail = (result.stderr or b"").decode(errors="replace").strip() if capture else ""
            raise ImageError(f"docker {' '.join(args[:3])} failed ({result.returncode}): {detail[-2000:]}")
        return result

    def answers(self) -> bool:
        try:
            return self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def has_image(self, tag: str) -> bool:
        return self.docker("image", "inspect", tag, check=False).returncode == 0

    def stop(self) -> None:
        """Stop the engine if it was started here (containers first, so none outlives it)."""
        if self.process is None:
            return
        running = self.docker("ps", "-q", check=False).stdout.decode().split()
        if running:
            self.docker("rm", "-f", *running, check=False)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


def _require(command: str, package: str) -> str:
    path = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if path:
        return path
    subprocess.run([str(ROOT / "scripts" / "ensure-docker")], check=False)
    path = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if not path:
        raise ImageError(f"{command} is not installed (Debian package {package}; scripts/ensure-docker installs it)")
    return path


def connect_engine(start: bool = True) -> DockerEngine:
    """An engine that answers: the user's, an earlier private one, or a new private one."""
    _require("docker", "docker.io")
    candidates = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
    candidates += ["unix:///var/run/docker.sock", f"unix://{PRIVATE_ENGINE_DIR / 'docker.sock'}"]
    for host in candidates:
        engine = DockerEngine(host)
        if engine.answers():
            return engine
    if not start:
        raise ImageError("no Docker engine answers (tried " + ", ".join(candidates) + ")")
    return start_private_engine()


def start_private_engine(deadline_s: float = 90.0) -> DockerEngine:
    if os.geteuid() != 0:
        raise ImageError("no Docker engine answers and starting one needs root (run as root, or start dockerd)")
    errors = []
    for driver in STORAGE_DRIVERS:
        try:
            return _start_dockerd(driver, deadline_s)
        except ImageError as exc:
            errors.append(f"{driver}: {exc}")
    raise ImageError("could not start dockerd: " + "; ".join(errors))


def _start_dockerd(driver: str, deadline_s: float) -> DockerEngine:
    dockerd = _require("dockerd", "docker.io")
    PRIVATE_ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    data_root = cache_dir() / f"docker-{driver}"
    data_root.mkdir(parents=True, exist_ok=True)
    sock = PRIVATE_ENGINE_DIR / "docker.sock"
    log = open(PRIVATE_ENGINE_DIR / "dockerd.log", "ab")  # noqa: SIM115 - the engine's lifetime
    process = subprocess.Popen(
        [dockerd, "--iptables=false", "--ip6tables=false", "--bridge=none", f"--storage-driver={driver}",
         f"--data-root={data_root}", f"--exec-root={PRIVATE_ENGINE_DIR / 'exec'}",
         f"--pidfile={PRIVATE_ENGINE_DIR / 'dockerd.pid'}", f"--host=unix://{sock}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = DockerEngine(f"unix://{sock}", process)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise ImageError(f"dockerd exited with {process.returncode}; see {PRIVATE_ENGINE_DIR / 'dockerd.log'}")
        if engine.answers():
            return engine
        time.sleep(0.2)
    engine.stop()
    raise ImageError(f"dockerd did not answer within {deadline_s:.0f} s; see {PRIVATE_ENGINE_DIR / 'dockerd.log'}")


def build_local_base(engine: DockerEngine, tag: str = LOCAL_BASE) -> str:
    """A Debian bookworm image with Python 3.11 from debootstrap, for machines without a registry.

    The host's CA bundle goes in (and pip is pointed at it), so that builds behind a proxy that
    re-signs TLS reach the Python package index as the host does."""
    debootstrap = _require("debootstrap", "debootstrap")
    with tempfile.TemporaryDirectory(prefix="sensor-hub-rootfs-", dir=cache_dir()) as tmp:
        rootfs = Path(tmp) / "rootfs"
        mirror = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
        subprocess.run([debootstrap, "--variant=minbase", f"--include={DEBIAN_PACKAGES}", "bookworm",
                        str(rootfs), mirror], check=True, stdout=subprocess.DEVNULL)
        host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if host_bundle.is_file():
            shutil.copyfile(host_bundle, rootfs / "etc/ssl/certs/ca-certificates.crt")
        for leftovers in (rootfs / "var/cache/apt/archives", rootfs / "var/lib/apt/lists"):
            for item in leftovers.glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        result = subprocess.run(
            ["docker", "import", "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
             "--change", "CMD [\"/bin/bash\"]", "-", tag], stdin=tar.stdout, env=engine.env, capture_output=True)
        tar.wait()
        if result.returncode != 0:
            raise ImageError(f"docker import failed: {result.stderr.decode(errors='replace')}")
    return tag


def choose_base(engine: DockerEngine) -> str:
    wanted = os.environ.get("BASE_IMAGE")
    if wanted:
        return wanted
    if engine.has_image(DEFAULT_BASE):
        return DEFAULT_BASE
    if engine.docker("pull", DEFAULT_BASE, check=False, timeout=120).returncode == 0:
        return DEFAULT_BASE
    if engine.has_image(LOCAL_BASE):
        return LOCAL_BASE
    print(f"{DEFAULT_BASE} cannot be pulled here; building {LOCAL_BASE} with debootstrap (about a minute)",
          file=sys.stderr)
    return build_local_base(engine)


def local_torch_wheel() -> Path | None:
    for folder in (os.environ.get("PIP_FIND_LINKS") or "").split():
        matches = sorted(Path(folder).glob(TORCH_WHEEL_GLOB)) if Path(folder).is_dir() else []
        if matches:
            return matches[-1]
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def wheel_server(folder: Path) -> Iterator[str]:
    """``folder`` on loopback for the build's pip (``--network host``), as a find-links URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEEL_PORT), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def build(engine: DockerEngine, tag: str = DEFAULT_TAG, quiet: bool = True) -> str:
    """Build the Dockerfile as ``tag``; returns a line saying what it used."""
    base = choose_base(engine)
    args = ["build", "--network", "host", "-t", tag, "--build-arg", f"BASE_IMAGE={base}"]
    wheel = local_torch_wheel()
    with contextlib.ExitStack() as stack:
        if wheel is not None:
            url = stack.enter_context(wheel_server(wheel.parent))
            args += ["--build-arg", f"TORCH_SOURCE=--find-links {url}"]
        if quiet:
            args.append("-q")
        engine.docker(*args, str(ROOT), capture=quiet)
    return f"{tag}: base {base}, torch from {wheel or 'the CPU wheel index'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.image", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build the image")
    build_cmd.add_argument("--tag", default=DEFAULT_TAG)
    sub.add_parser("engine", help="print the DOCKER_HOST of a running engine (starting a private one)")
    args = parser.parse_args(argv)
    try:
        engine = connect_engine()
        if args.command == "engine":
            print(engine.host)
            return 0
        started = time.monotonic()
        print(build(engine, args.tag, quiet=False), f"({time.monotonic() - started:.0f} s)")
        if engine.process is not None:
            print(f"the image is in a private engine, still running: export DOCKER_HOST={engine.host}")
    except ImageError as exc:
        print(f"make image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
