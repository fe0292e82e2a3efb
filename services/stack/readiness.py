"""Readiness by protocol, never by sleeping: poll a check until it passes or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from shared import signals
from shared.errors import ClickstreamError


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    check: Callable[[], object],
    timeout: float,
    what: str,
    log: Path | None = None,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.25,
) -> object:
    """Call `check` until it returns without raising; return its result.

    Gives up after `timeout` seconds, or at once when `alive()` says the process died,
    with an error naming what was awaited, the last error and the log's last lines.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            return check()
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        signals.check()  # a stop signal whose KeyboardInterrupt the check swallowed
        if alive is not None and not alive():
            raise ClickstreamError(
                f"{what}: the process exited while starting (last error: {last})"
                + _log_hint(log)
            )
        if time.monotonic() >= deadline:
            raise ClickstreamError(
                f"{what}: not ready after {timeout:.0f}s (last error: {last})" + _log_hint(log)
            )
        time.sleep(interval)


def _log_hint(log: Path | None) -> str:
    if log is None:
        return ""
    text = tail(log)
    return f"\n--- last lines of {log} ---\n{text}" if text else f" (log {log} is empty)"
