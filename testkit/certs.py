"""Test certificates made with the real openssl: certificate authorities and server certificates
for 127.0.0.1 that they sign, so that a broker can present a certificate the bridge trusts, or one
from an authority it does not know."""
from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str = "ca") -> Path:
    """``<name>.crt`` and ``<name>.key`` in ``directory``: a self-signed authority; returns the certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-days", "2", "-subj", f"/CN=sensor-hub test {name}", cwd=directory)
    return directory / f"{name}.crt"


def issue_server_cert(directory: Path, ca: str = "ca", name: str = "server") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (in its subjectAltName, as TLS clients check) signed by the
    authority ``ca`` made by :func:`make_ca` in the same directory; returns (certificate, key)."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", "/CN=127.0.0.1", cwd=directory)
    (directory / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=directory)
    return directory / f"{name}.crt", directory / f"{name}.key"
