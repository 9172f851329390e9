"""The orchestrator's handle on a child process of the benchmark (`run.py --role NAME`): JSON lines both ways."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.e2e.common import REPO

RUN = REPO / "benchmarks" / "run.py"  # the entry point: it runs the roles too


class Child:
    """A benchmark child process speaking JSON lines on stdin/stdout; stopped by its pid."""

    def __init__(self, role: str, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.role = role
        self.log = log
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(RUN), "--role", role, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                start_new_session=True,
            )
        self._buf = b""

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.role}: no answer in {timeout} s (log: {self.log})")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    tail = self.log.read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"{self.role} exited ({self.proc.poll()}): {tail}")
                self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return dict(json.loads(line))

    def ask(self, obj: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        self.send(obj)
        return self.read(timeout)

    def stop(self) -> None:
        from tests.support.procs import stop_process

        if self.proc.poll() is None:
            try:
                self.send({"cmd": "quit"})
                self.proc.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                stop_process(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a child that has exited: a broken pipe
                    stream.close()
