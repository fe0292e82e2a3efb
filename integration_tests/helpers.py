"""Run the real `clickstream` CLI (or `make`) against a given Settings (as its environment),
read its output with deadlines, and find what it left running."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psutil

from services.stack.stack import PORT_SETTINGS
from shared import tables as tb
from shared.clients.ports import is_listening
from shared.settings import Settings, settings_env

CLI = [sys.executable, "-m", "services.cli"]
REPO = Path(__file__).resolve().parent.parent


def run_cli(settings: Settings, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=settings_env(settings), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def popen_cli(settings: Settings, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], env=settings_env(settings), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def popen_make(settings: Settings, *args: str) -> subprocess.Popen:
    """`make ARGS` as a user runs it, in a process group of its own (the terminal's
    foreground group), stdout and stderr together. The settings go in as environment
    variables; an outer make's jobserver and level are left out."""
    env = {k: v for k, v in settings_env(settings).items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.Popen(["make", "--no-print-directory", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


class Output:
    """A child's output, read by a thread: a test can wait for a line with a deadline
    instead of blocking on a pipe, and still read everything after the child exits."""

    def __init__(self, stream):
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._lines.append(None)  # end of output
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(ln for ln in self._lines if ln is not None)

    def wait_for(self, needle: str, timeout: float) -> str:
        """The first line containing `needle`; fails with the output so far when the
        output ends or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if line is None:
                        raise AssertionError(f"output ended before {needle!r}:\n{self.text}")
                    if needle in line:
                        return line
                seen = len(self._lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {needle!r} after {timeout:.0f}s:\n{self.text}")
                self._changed.wait(left)

    def wait_closed(self, timeout: float) -> str:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"output still open after {timeout:.0f}s"
        return self.text


def processes_using(path: Path) -> list[psutil.Process]:
    """Live processes whose command line names `path` (or a file under it) or whose
    CLICKSTREAM_DATA_DIR is under it: every process a test's private settings started.
    Zombies are left out (an exited process waiting to be reaped holds no port or file)."""
    # a whole path component: /tmp/pytest-1 must not match another run's /tmp/pytest-10
    named = re.compile(re.escape(str(path).rstrip("/")) + r"(?=[/\s:,;'\"=]|$)").search
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
                continue
            if named(" ".join(p.info["cmdline"] or [])) or named(
                    p.environ().get("CLICKSTREAM_DATA_DIR", "")):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return out


def java_processes_using(path: Path) -> list[str]:
    """Command lines of the live java processes that use `path`."""
    return [line for p in processes_using(path) if "java" in (line := cmdline(p)).split(" ")[0]]


def settings_ports(settings: Settings) -> list[int]:
    """Every port the stack's servers and the dashboard bind."""
    return [getattr(settings, name) for name in (*PORT_SETTINGS, "dashboard_port")]


def survivors(procs: list[psutil.Process], data_dir: Path, timeout: float) -> list[str]:
    """What is still running `timeout` seconds from now at the latest: of `procs` (a
    process tree taken earlier), and of every process using `data_dir`. Waits for each to
    exit (they stop on their own, in bounded time), never for a fixed time."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    deadline = time.monotonic() + timeout
    left = processes_using(data_dir)
    while left and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=max(0.1, deadline - time.monotonic()))
        left = processes_using(data_dir)
    return [f"pid {p.pid}: {line[:200]}" for p in {*alive, *left} if (line := cmdline(p))]


def cmdline(p: psutil.Process) -> str:
    """A process's command line, '' once it has exited (or is a zombie)."""
    try:
        return " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


def listening(settings: Settings) -> list[int]:
    return [p for p in settings_ports(settings) if is_listening(p)]


def kill_tree(root: psutil.Process | int) -> None:
    """SIGKILL a process and everything under it (a test's last resort in `finally`)."""
    try:
        root = psutil.Process(root) if isinstance(root, int) else root
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


# ------------------------------------------------------- Cassandra tables vs the truth
def read_table(settings, name: str) -> list[tuple]:
    """Every row of a table (test-size data), Python-typed and sorted."""
    from shared.clients.cassandra import connect

    t = tb.table(name)
    cluster, session = connect(settings, settings.cassandra_keyspace)
    try:
        rows = session.execute(f"SELECT {', '.join(t.column_names)} FROM {name}")
        return normalise([tuple(r) for r in rows])
    finally:
        cluster.shutdown()


def normalise(rows) -> list[tuple]:
    out = []
    for r in rows:
        vals = []
        for v in r:
            if hasattr(v, "date") and type(v).__name__ == "Date":  # cassandra.util.Date
                v = v.date()
            if isinstance(v, dt.datetime):
                v = v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)
            vals.append(v)
        out.append(tuple(vals))
    return sorted(out, key=repr)


def assert_tables_equal_truth(settings, expected: dict[str, pl.DataFrame], suffix: str):
    bad = []
    for t in tb.ANALYTICS:
        got = read_table(settings, t.name + suffix)
        want = normalise(expected[t.name].rows())
        if got != want:
            bad.append(f"{t.name}{suffix}: {len(got)} rows vs {len(want)} expected; e.g. "
                       f"{sorted(set(got) ^ set(want), key=repr)[:2]}")
    assert not bad, "\n".join(bad)
