"""Keep secrets out of what dialdaq writes: log lines, tracebacks, error messages.

`daq.mqtt.client` registers the broker password here when it hands it to a client. A
`RedactFilter` on the log handlers masks any registered secret in a record before it is
written, and `scrub` does the same for text printed directly (the CLI's error line).
This is a safety net: no code is meant to log a secret in the first place.

Install once, after logging is configured (`daq.cli.setup_logging`):

    logging.basicConfig(...)
    redact.install()

and print errors as `redact.scrub(str(exc))`.
"""

from __future__ import annotations

import logging

MASK = "********"
# Shorter values are not masked: masking every "ab" would garble the logs and protect little.
MIN_LENGTH = 4

_secrets: set[str] = set()


def register(secret: str | None) -> None:
    """Mask `secret` from now on wherever this module is asked to."""
    if secret and len(secret) >= MIN_LENGTH:
        _secrets.add(secret)


def forget_all() -> None:
    """For tests: drop every registered secret."""
    _secrets.clear()


def scrub(text: str) -> str:
    """`text` with every registered secret replaced by MASK (longest first, so none leaks in part)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactFilter(logging.Filter):
    """A handler filter: rewrites a record whose message or traceback contains a registered secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add a RedactFilter to every handler of `logger` (default: the root logger) that lacks one."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactFilter) for f in handler.filters):
            handler.addFilter(RedactFilter())
