"""A password in a command-line broker URL (`--broker mqtt://user:secret@host`): warn, and hide it.

Every local user can read a process's command line (`ps`, /proc/<pid>/cmdline). `warn_password_in_url`
says so and points to the ways that stay private: DAQ_BROKER_PASSWORD (the environment is readable
by the same user and root only) or `[broker] password_file`. On Linux it also overwrites the
password in the process's own argv memory with `*`, so the process list shows it no longer; that
happens once Python has started and parsed the options (tens of milliseconds after exec), so the
password is visible before that, and it stays in the shell history: the warning is the fix, the
overwrite only narrows the window. Elsewhere (macOS, Windows) the command line is left as it is.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

from daq import redact

log = logging.getLogger("daq")

ADVICE = "use DAQ_BROKER_PASSWORD or [broker] password_file instead (see README, Security)"


def warn_password_in_url(url: str, option: str = "--broker") -> bool:
    """Warn when `url` (given on the command line as `option`) carries a password; True if it did."""
    try:
        raw = urlsplit(url).password
    except ValueError:
        return False
    if not raw:
        return False
    redact.register(raw)
    hidden = hide_in_argv(raw)
    where = (
        "it is now masked in the process list, but was readable there while daq started and stays in your shell history"
        if hidden
        else "every local user can read it in the process list (ps) for as long as daq runs"
    )
    log.warning("%s carries a password: %s; %s", option, where, ADVICE)
    return True


def hide_in_argv(secret: str) -> bool:
    """Overwrite every occurrence of `secret` in this process's argv memory with `*` (Linux only)."""
    if not sys.platform.startswith("linux") or not secret:
        return False
    try:
        stat = Path("/proc/self/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        start, end = int(fields[45]), int(fields[46])  # fields 48 and 49: arg_start, arg_end
    except (OSError, ValueError, IndexError):
        return False
    if not 0 < start < end or end - start > 1 << 20:
        return False
    try:
        args = ctypes.string_at(start, end - start)
        if args != Path("/proc/self/cmdline").read_bytes()[: end - start]:
            return False  # not the memory we think it is: leave it alone
    except (OSError, ValueError):
        return False
    needle = secret.encode()
    found = False
    at = args.find(needle)
    while at >= 0:
        ctypes.memmove(start + at, b"*" * len(needle), len(needle))
        found = True
        at = args.find(needle, at + len(needle))
    return found
