"""A throw-away PKI for TLS tests, made with the `openssl` command: a CA, server and client certificates.

EC keys (prime256v1) keep it fast: a whole set takes well under a second. Everything lands in
the folder given (a test's tmp_path); nothing is installed or trusted system-wide.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

DAYS = "2"
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("openssl is not installed: apt-get install openssl")
    done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{done.stderr}")


def san_entry(name: str) -> str:
    try:
        ip_address(name)
    except ValueError:
        return f"DNS:{name}"
    return f"IP:{name}"


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Ca:
    """A certificate authority that signs server and client certificates in `folder`."""

    folder: Path
    cert: Path
    key: Path

    def issue(self, name: str, sans: Sequence[str] = (), client: bool = False) -> CertPair:
        """A leaf certificate with CN `name`; `sans` (DNS names or IP addresses) go into subjectAltName.

        A server certificate (client=False) with no `sans` gets none: a name check against it fails.
        """
        cert = self.folder / f"{name}.crt"
        key = self.folder / f"{name}.key"
        csr = self.folder / f"{name}.csr"
        ext = self.folder / f"{name}.ext"
        lines = [
            "basicConstraints = critical, CA:FALSE",
            "keyUsage = critical, digitalSignature",
            f"extendedKeyUsage = {'clientAuth' if client else 'serverAuth'}",
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid, issuer",
        ]
        if sans:
            lines.append("subjectAltName = " + ", ".join(san_entry(s) for s in sans))
        ext.write_text("\n".join(lines) + "\n")
        openssl("req", "-new", *EC_KEY, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}", cwd=self.folder)
        sign = ["x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key), "-sha256"]
        sign += ["-set_serial", str(secrets.randbits(63)), "-days", DAYS, "-extfile", str(ext), "-out", str(cert)]
        openssl(*sign, cwd=self.folder)
        return CertPair(cert, key)


def make_ca(folder: Path, name: str = "dialdaq-test-ca") -> Ca:
    folder.mkdir(parents=True, exist_ok=True)
    cert = folder / f"{name}.crt"
    key = folder / f"{name}.key"
    args = ["req", "-x509", "-new", *EC_KEY, "-keyout", str(key), "-out", str(cert), "-days", DAYS, "-sha256"]
    args += ["-subj", f"/CN={name}", "-addext", "basicConstraints = critical, CA:TRUE"]
    args += ["-addext", "keyUsage = critical, keyCertSign, cRLSign", "-addext", "subjectKeyIdentifier = hash"]
    openssl(*args, cwd=folder)
    return Ca(folder, cert, key)


@dataclass(frozen=True)
class Pki:
    ca: Ca
    server: CertPair  # for 127.0.0.1 and localhost
    client: CertPair  # CN = the client name given


def make_pki(folder: Path, client_name: str = "lab-a") -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    ca = make_ca(folder)
    server = ca.issue("server", sans=("localhost", "127.0.0.1"))
    client = ca.issue(client_name, client=True)
    return Pki(ca, server, client)
