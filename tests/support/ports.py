"""Free loopback ports that no other test process on this machine is handed at the same time.

`socket.bind(0)` and close gives a port nothing listens on *now*; a test hands it to Mosquitto or a
daemon a moment later, and a broker a test stops and starts again keeps its port in between. With
pytest-xdist (`scripts/test` runs workers side by side), or two runs at once, another process could be
handed that same port in the meantime. So each port is claimed: a file per port under CLAIMS (the
claimer's pid and start time), made while holding one flock, and never given to anyone else while the
claiming process lives. The ports come from below the kernel's ephemeral range (PORTS_BELOW_EPHEMERAL
of them), where no outgoing connection takes one either; a claim of a process that is gone is stale
and taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil

CLAIMS = Path(tempfile.gettempdir()) / f"dialdaq-test-ports-{os.getuid()}"
PORTS_BELOW_EPHEMERAL = 12000
_FALLBACK_EPHEMERAL_LOW = 32768
_next: int | None = None  # where this process looks next: each call moves on, a port is not offered twice


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_LOW


def _me() -> str:
    return f"{os.getpid()} {psutil.Process().create_time()}"


def _alive(claim: str) -> bool:
    try:
        pid, started = claim.split()
        return bool(psutil.Process(int(pid)).create_time() == float(started))
    except (ValueError, psutil.Error):
        return False


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Mosquitto and aiohttp bind
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    CLAIMS.mkdir(mode=0o700, exist_ok=True)
    with (CLAIMS / "lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def claim_port() -> int:
    """A loopback TCP port that nothing listens on and that this process alone holds until it exits."""
    global _next
    high = _ephemeral_low()
    low = max(1024, high - PORTS_BELOW_EPHEMERAL)
    if high - low < 100:  # an unusual range: the kernel's own choice, as before
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    span = high - low
    if _next is None:  # workers start apart, so their searches seldom meet at the lock
        _next = low + (os.getpid() * 97) % span
    me = _me()
    with _locked():
        for step in range(span):
            port = low + (_next - low + step) % span
            path = CLAIMS / str(port)
            with contextlib.suppress(FileNotFoundError):
                held = path.read_text()
                if held == me or _alive(held):
                    continue
            if not _bindable(port):
                continue
            path.write_text(me)
            _next = port + 1
            return port
    raise RuntimeError(f"no free loopback port in {low}-{high - 1}: every one is claimed or in use ({CLAIMS})")
