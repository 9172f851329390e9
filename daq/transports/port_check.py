"""What a serial port path is, and which processes hold it: the platform seam `daq doctor` uses.

Nothing here opens the port: opening an Arduino's port resets the board (DTR). On Linux the
answers come from the kernel's tables instead: /proc/tty/drivers says whether a character
device's major:minor belongs to a tty driver (a USB serial port, a pty) or to something else
(/dev/null is 'mem'), /proc/locks lists the flock() a reader such as `daq run` took
(pyserial's exclusive open), and /proc/<pid>/fd says who has the node open. Elsewhere a
character device is opened non-blocking once to ask isatty(), and who holds a port is not known
(None): the open itself then says "in use".
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
LINUX = sys.platform.startswith("linux")
COMMAND_CHARS = 80  # a holder's command line is shown cut to this


@dataclass(frozen=True)
class NodeKind:
    """What a path is, as far as a serial profile cares."""

    serial: bool | None  # a tty; None: cannot tell here
    what: str  # in words: "a tty of the pty_slave driver (136:3)", "a regular file", ...


@dataclass(frozen=True)
class Holder:
    """A process that has a device node open."""

    pid: int
    command: str  # its command line (cut), or its name
    locked: bool  # holds the exclusive lock (flock) a reader takes

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command})"


def serial_node_kind(path: str) -> NodeKind:
    """Whether `path` (symlinks followed) is a serial port (a tty), and what it is if not."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return NodeKind(False, f"nothing usable ({exc.strerror})")
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return NodeKind(False, "a regular file")
    if stat.S_ISDIR(mode):
        return NodeKind(False, "a directory")
    if stat.S_ISFIFO(mode):
        return NodeKind(False, "a named pipe")
    if stat.S_ISSOCK(mode):
        return NodeKind(False, "a socket")
    if stat.S_ISBLK(mode):
        return NodeKind(False, "a block device (a disk?)")
    if not stat.S_ISCHR(mode):
        return NodeKind(False, f"a file of mode {stat.filemode(mode)}")
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    if LINUX and (PROC / "tty" / "drivers").is_file():
        driver = _tty_driver(major, minor)
        if driver is not None:
            return NodeKind(True, f"a tty of the {driver} driver ({major}:{minor})")
        name = _char_driver(major)
        of = f" of the '{name}' driver" if name else ""
        return NodeKind(False, f"a character device{of} ({major}:{minor}), not a tty")
    return _ask_isatty(path, major, minor)


def _tty_driver(major: int, minor: int) -> str | None:
    """The tty driver of major:minor in /proc/tty/drivers ('acm', 'usbserial', 'pty_slave'), None if none."""
    try:
        lines = (PROC / "tty" / "drivers").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        words = line.split()
        if len(words) < 5 or not words[2].isdigit() or int(words[2]) != major:
            continue
        lo, _, hi = words[3].partition("-")
        if lo.isdigit() and int(lo) <= minor <= int(hi or lo):
            return words[0]
    return None


def _char_driver(major: int) -> str | None:
    """The name /proc/devices gives character major `major` ('mem' for /dev/null)."""
    try:
        text = (PROC / "devices").read_text()
    except OSError:
        return None
    chars = text.split("Block devices:")[0]
    for line in chars.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == str(major):
            return words[1]
    return None


def _ask_isatty(path: str, major: int, minor: int) -> NodeKind:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return NodeKind(None, f"a character device ({major}:{minor})")
    try:
        tty = os.isatty(fd)
    finally:
        os.close(fd)
    return NodeKind(tty, f"a tty ({major}:{minor})" if tty else f"a character device ({major}:{minor}), not a tty")


def holders(path: str, exclude: tuple[int, ...] = ()) -> list[Holder] | None:
    """The processes with `path` open, lock holders first; None where this cannot be known.

    Processes of other users are visible only to root; `exclude` leaves out pids (this one).
    """
    if not LINUX or not (PROC / "self" / "fd").is_dir():
        return None
    real = os.path.realpath(path)
    locked = _lockers(real)
    found: dict[int, Holder] = {}
    skip = {os.getpid(), *exclude}
    for proc in PROC.iterdir():
        if not proc.name.isdigit() or int(proc.name) in skip:
            continue
        pid = int(proc.name)
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == real:
                        found[pid] = Holder(pid, _command(proc), pid in locked)
                        break
    for pid in locked - set(found) - skip:  # a lock whose holder's fds we may not read
        found[pid] = Holder(pid, _command(PROC / str(pid)), True)
    return sorted(found.values(), key=lambda h: (not h.locked, h.pid))


def _lockers(real: str) -> set[int]:
    """Pids holding a flock()/lockf() on the file `real` (/proc/locks: 'maj:min:inode' of the node)."""
    try:
        st = os.stat(real)
        lines = (PROC / "locks").read_text().splitlines()
    except OSError:
        return set()
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    pids: set[int] = set()
    for line in lines:
        words = line.split()
        if "->" in words:  # a waiter, not a holder
            continue
        for i, word in enumerate(words):
            parts = word.split(":")
            if len(parts) == 3 and i > 0 and words[i - 1].isdigit():
                try:
                    key = (int(parts[0], 16), int(parts[1], 16), int(parts[2]))
                except ValueError:
                    continue
                if key == want:
                    pids.add(int(words[i - 1]))
    return pids


def _command(proc: Path) -> str:
    """What a process runs, for a person: its command line cut short (arguments past the first
    few may carry secrets: only the program and its first words are shown), else its name."""
    try:
        argv = [a for a in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        argv = []
    if not argv:
        try:
            return (proc / "comm").read_text().strip() or "?"
        except OSError:
            return "?"
    shown = " ".join([os.path.basename(argv[0]), *argv[1:4]])
    return shown if len(shown) <= COMMAND_CHARS else shown[: COMMAND_CHARS - 3] + "..."


def in_use_text(path: str) -> str:
    """'in use by pid 4242 (python3 -m daq run)' (the lock holder, else every holder), or 'in use'."""
    found = holders(path)
    if not found:
        return "in use"
    lockers = [h for h in found if h.locked] or found
    return "in use by " + ", ".join(h.describe() for h in lockers)
