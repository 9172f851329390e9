"""The scripts in benchmarks/ run as a user runs them: this interpreter, a subprocess, their output
and the JSON they wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.procs import REPO


def run_script(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """benchmarks/`name` with `args`; whatever it exits with (the caller asserts on it)."""
    command = [sys.executable, str(REPO / "benchmarks" / name), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def run_to_json(name: str, out: Path, *args: str, timeout: float = 120) -> tuple[str, Any]:
    """benchmarks/`name` with `args` and `--json out`: it must succeed; its stdout and the JSON."""
    done = run_script(name, *args, "--json", str(out), timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(out.read_text())
