"""Finding serial reader processes (daq.transports.reader_process) among a process's children."""

from __future__ import annotations

import os
import time

import psutil

SCRIPT = "reader_process.py"


def reader_processes(parent: int | None = None) -> list[psutil.Process]:
    """The live (not zombie) reader processes started by `parent` (default: this process)."""
    try:
        children = psutil.Process(parent if parent is not None else os.getpid()).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any(arg.endswith(SCRIPT) for arg in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def wait_dead(pid: int, timeout: float = 5.0) -> None:
    """Until `pid` is gone or a zombie (killed, not necessarily reaped by its parent yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.005)
    raise TimeoutError(f"process {pid} still runs after {timeout} s")
