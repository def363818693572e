"""The instance's API token: what a state-changing REST call (any method but GET, HEAD, OPTIONS)
must carry as ``Authorization: Bearer <token>`` (enforced by shared/web.py install_api_token).

With host networking every process on the host reaches the services' ports; reading stays open
on loopback, but moving a window, resetting a board or reloading the model takes the token.

Where it comes from, decided here only (``resolve``), first found wins:

1. a secret: the environment ``SENSOR_HUB_API_TOKEN``, or the key ``api_token`` of
   ``/run/secrets/<instance>_creds`` (``CREDS_api_token`` after shared/config.merged_environment);
2. the file ``<DATA_DIR>/api-token`` (mode 0600), made at the first start. The five programs
   start at once, so it is made race-free: each writes a whole token to a temp file of its own
   and links it to the final name; a link that finds the name taken loses, and that program
   reads the winner's token. Nobody ever sees a half-written file.

The token itself never goes into a log line, an error message or a repr: only where it is.
"""
from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_NAME = "SENSOR_HUB_API_TOKEN"
CREDS_KEY = "api_token"
FILE_NAME = "api-token"
HEADER = "Authorization"
SCHEME = "Bearer"
OPEN_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing: open to any local client without the token."""
_MIN_LENGTH = 16


class TokenError(Exception):
    """The token cannot be read or made (the message says where, never what)."""


@dataclass(frozen=True)
class ApiToken:
    value: str = field(repr=False)
    where: str
    """Where the token is, for people: the file's path, or "given as a secret (...)"."""

    def header(self) -> dict[str, str]:
        """The header a client sends with a state-changing call."""
        return {HEADER: f"{SCHEME} {self.value}"}

    def admits(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries this token (constant-time compare)."""
        if not authorization:
            return False
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != SCHEME.lower():
            return False
        return hmac.compare_digest(given.strip().encode("utf-8"), self.value.encode("utf-8"))


def from_secrets(env: Mapping[str, str]) -> ApiToken | None:
    """The token given as a secret (environment first, then the creds file), or None."""
    for name, where in ((ENV_NAME, f"given as a secret ({ENV_NAME})"),
                        (f"CREDS_{CREDS_KEY}", f"given as a secret ({CREDS_KEY} in the instance's creds file)")):
        value = (env.get(name) or "").strip()
        if value:
            if len(value) < _MIN_LENGTH or any(c.isspace() for c in value):
                raise TokenError(f"{name}: the API token must be at least {_MIN_LENGTH} characters "
                                 "without spaces")
            return ApiToken(value, where)
    return None


def token_file(data_dir: Path) -> ApiToken:
    """The token of ``<data_dir>/api-token``, made (0600, atomically, race-free) if missing."""
    path = Path(data_dir) / FILE_NAME
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    temp = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_urlsafe(32) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another program of the instance made it first: its token is the one
    except OSError as exc:
        raise TokenError(f"cannot make the API token file {path} ({exc.strerror})") from None
    finally:
        try:
            os.unlink(temp)
        except OSError:
            pass
    try:
        return _read(path)
    except FileNotFoundError:
        raise TokenError(f"the API token file {path} vanished while it was made") from None


def _read(path: Path) -> ApiToken:
    try:
        value = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise TokenError(f"cannot read the API token file {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        value = ""
    if len(value) < _MIN_LENGTH or any(c.isspace() for c in value):
        raise TokenError(f"the API token file {path} does not hold a token (delete it to have a new one made)")
    return ApiToken(value, str(path))


def resolve(env: Mapping[str, str], data_dir: Path) -> ApiToken:
    """The instance's token: a secret if one is given, else the data folder's file."""
    return from_secrets(env) or token_file(data_dir)
