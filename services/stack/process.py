"""Background server processes with pid files: start, find, stop, clean up after crashes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from shared import signals
from shared.errors import ClickstreamError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pidfile:
    """Where a server records its pid; `running()` ignores stale files left by a crash."""

    path: Path

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def pid(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def process(self) -> psutil.Process | None:
        """The live process this file names, or None (removing the file if it is stale)."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            p = psutil.Process(pid)
            # A recycled pid would be some other program: we only ever start java.
            if p.status() != psutil.STATUS_ZOMBIE and "java" in os.path.basename(p.exe() or ""):
                return p
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        log.info("removing stale pid file %s (pid %s is gone)", self.path, pid)
        self.path.unlink(missing_ok=True)
        return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def spawn(cmd: list[str], log_file: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None, die_with_parent: bool = False) -> subprocess.Popen:
    """Start `cmd` in its own session (so Ctrl-C in the terminal doesn't reach it twice),
    stdout/stderr appended to `log_file`. With `die_with_parent`, it gets SIGTERM when
    the calling thread of this process ends, however this process dies."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=signals.parent_death_hook() if die_with_parent else None,
        )
    except FileNotFoundError as e:
        raise ClickstreamError(f"cannot run {cmd[0]!r}: {e}") from None
    finally:
        out.close()


def terminate(proc: psutil.Process, name: str, timeout: float = 30.0) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL; children included."""
    try:
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in [proc, *children]:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    gone, alive = psutil.wait_procs([proc, *children], timeout=timeout)
    for p in alive:
        log.warning("%s (pid %s) ignored SIGTERM for %.0fs: killing it", name, p.pid, timeout)
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and psutil.pid_exists(pid):
        time.sleep(0.05)
