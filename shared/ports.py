"""Can each service of an instance listen on its configured port? Asked before gunicorn starts.

With host networking, a second sensor-hub instance (or another connector using 5001-5004) on
the same machine wants the same ports. gunicorn alone would log "Connection in use", retry for
five seconds and exit with a line that names neither the instance file nor the setting to
change. So ``serve()`` (one service) and ``python -m shared.preflight`` (all four at once) try
the socket first, exactly as gunicorn will bind it, and say in one line what to change.
"""
from __future__ import annotations

import errno
import socket

from shared.config import ServiceAddress, Settings

PORT_UNAVAILABLE_EXIT = 3
"""Exit status of a program, or of the preflight, that cannot listen where configured
(2 is a config that does not load: shared.config.load_settings_or_exit)."""


def listen_error(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on right now; None when it can.

    Binds as gunicorn does (its TCPSocket / TCP6Socket: the address family by the host's form,
    SO_REUSEADDR, bind, listen) and lets go at once, so the answer is the one gunicorn would get
    (a port in TIME_WAIT is free, one that a server listens on — on this address or on a
    wildcard — is not).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1)
    except OSError as exc:  # socket.gaierror too: a host name that does not resolve
        return exc
    return None


def bind_address(address: ServiceAddress) -> str:
    """``127.0.0.1:5003``, ``[::1]:5003``: where the service listens, as a user writes it."""
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


def port_problem(settings: Settings, service: str) -> str | None:
    """One line saying why ``service`` cannot listen on its configured address and which setting
    of which file to change; None when it can."""
    address = settings.service(service)
    error = listen_error(address.host, address.port)
    if error is None:
        return None
    where = bind_address(address)
    setting = f"config.services.{service}"
    source = f"of {settings.config_file}" if settings.config_file else "of the instance file"
    if error.errno == errno.EADDRINUSE:
        return (f"{service}: {where} is already in use (another sensor-hub instance or another program); "
                f"choose a free port in {setting}.port {source}")
    if error.errno == errno.EACCES:
        return (f"{service}: {where} needs privileges this program does not have; "
                f"choose a port above 1024 in {setting}.port {source}")
    if error.errno == errno.EADDRNOTAVAIL or isinstance(error, socket.gaierror):
        return (f"{service}: {address.host!r} is not an address of this machine ({error.strerror}); "
                f"fix {setting}.host {source}")
    return f"{service}: cannot listen on {where} ({error.strerror or error}); check {setting} {source}"


def port_problems(settings: Settings) -> list[str]:
    """Every service of the instance that cannot listen where configured, one line each."""
    return [problem for name in settings.services if (problem := port_problem(settings, name)) is not None]
