"""Process and machine statistics from /proc, for every benchmark: CPU time, RSS, how busy the machine is."""

from __future__ import annotations

import os
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """user + system CPU time of a process, all its threads, in clock ticks (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def proc_cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process, all its threads."""
    user, system = proc_cpu_split_s(pid)
    return user + system


def child_pids(pid: int) -> list[int]:
    """The live children of a process (all its threads' children, /proc/PID/task/*/children)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return found


def tree_cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process and its live descendants: the daemon with its
    serial reader process, which reads and stamps in a process of its own."""
    user, system = proc_cpu_split_s(pid)
    for child in child_pids(pid):
        try:
            cu, cs = tree_cpu_split_s(child)
        except OSError:  # it ended meanwhile
            continue
        user, system = user + cu, system + cs
    return user, system


def tree_cpu_s(pid: int) -> float:
    """user + system CPU seconds of a process and its live descendants."""
    user, system = tree_cpu_split_s(pid)
    return user + system


def tcp_connected(pid: int, port: int) -> bool:
    """Whether process `pid` holds a TCP connection to `port`, ESTABLISHED (its socket descriptors,
    /proc/PID/fd, matched to /proc/net/tcp and tcp6 by inode): how a benchmark knows a daemon of any
    version has reached its broker, whatever that version logs."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:  # it ended
        return False
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()  # sl local remote st tx:rx tr:when retrnsmt uid timeout inode
            if len(fields) > 9 and fields[2].endswith(wanted) and fields[3] == "01" and fields[9] in inodes:
                return True
    return False


def _status_mb(pid: int, key: str, missing: float) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return missing


def proc_hwm_mb(pid: int) -> float:
    """Peak resident memory of a process (VmHWM), MiB; nan when the kernel does not say."""
    return _status_mb(pid, "VmHWM:", float("nan"))


def proc_rss_mb(pid: int, missing: float = float("nan")) -> float:
    """Resident memory of a process now (VmRSS), MiB; `missing` when the kernel does not say."""
    return _status_mb(pid, "VmRSS:", missing)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, all CPUs (/proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest and guest_nice are already counted in user and nice
    return total - idle, total


def machine_busy_pct(before: tuple[float, float], after: tuple[float, float]) -> float:
    """How busy all CPUs were between two cpu_times(), 100 = every CPU all the time."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(100 * busy / total, 1) if total > 0 else float("nan")


def wait_quiet(max_busy_pct: float, timeout_s: float) -> float:
    """Wait until the machine was at most max_busy_pct busy over one second; return the last figure."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = cpu_times()
        time.sleep(1.0)
        busy = machine_busy_pct(before, cpu_times())
        if busy <= max_busy_pct or time.monotonic() > deadline:
            return busy
