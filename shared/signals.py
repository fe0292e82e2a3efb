"""One way to stop: Ctrl-C, SIGTERM and SIGHUP all take the path of KeyboardInterrupt, and a
process whose parent dies (even by SIGKILL) is told to stop too.

    signals.install()            # in the CLI: every command stops the same way on each signal
    signals.install(stop.set)    # a loop that polls an event instead (the producer)
    signals.die_with_parent()    # SIGTERM to this process when its parent dies
    spawn(..., preexec_fn=signals.parent_death_hook())   # the same for a child (a JVM)

A terminal closing (SIGHUP), `kill`, a supervisor or `docker stop` (SIGTERM) and Ctrl-C
(SIGINT) all raise `Interrupted` -- a KeyboardInterrupt, so every `except KeyboardInterrupt`
and `finally` shutdown path already written for Ctrl-C runs for them too. Only the first
signal interrupts: later ones arrive while that shutdown runs (which is bounded) and must
not break it half-way, so they only say that the stop is under way. A SIGHUP that was
ignored when the process started (`nohup`) stays ignored, and such a process does not stop
with its parent either: it was asked to outlive its terminal.

Parent death uses Linux's PR_SET_PDEATHSIG rather than a thread watching the parent pid:
it also works for processes that are not Python (the server JVMs), costs nothing while the
parent lives, and is immediate. Its one catch: the signal comes when the *thread* that
started the child ends, so start such children from a thread that lives as long as the
parent (the main thread, everywhere here).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1

_received: int | None = None
_hup_ignored_at_start = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by the first stop signal; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(name(signum))
        self.signum = signum


def name(signum: int) -> str:
    return signal.Signals(signum).name


def received() -> int | None:
    """The first stop signal this process received, or None."""
    return _received


def check() -> None:
    """Raise Interrupted if a stop signal came (for loops where a library may have
    swallowed the KeyboardInterrupt that the signal raised)."""
    if _received is not None:
        raise Interrupted(_received)


def exit_code() -> int | None:
    """128 + the signal number (what a shell reports), if a stop signal came."""
    return None if _received is None else 128 + _received


def install(on_stop: Callable[[], None] | None = None) -> dict[int, object]:
    """Handle SIGINT, SIGTERM and SIGHUP alike; returns the previous handlers (for
    `restore`). With `on_stop`, every signal calls it; without, the first raises
    Interrupted. Does nothing outside the main thread (Python allows handlers only there)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        global _received
        first = _received is None
        if first:
            _received = signum
        if on_stop is not None:
            on_stop()
        elif first:
            raise Interrupted(signum)
        else:
            print(f"{name(signum)}: already stopping (pid {os.getpid()}), please wait",
                  file=sys.stderr, flush=True)

    previous = {}
    for s in STOP_SIGNALS:
        if s == signal.SIGHUP and _hup_ignored_at_start:
            continue
        previous[s] = signal.signal(s, handler)
    return previous


def restore(previous: dict[int, object]) -> None:
    for s, h in previous.items():
        signal.signal(s, h)


def record(signum: int) -> None:
    """Remember `signum` as received (a KeyboardInterrupt that came another way)."""
    global _received
    _received = signum


def reset() -> None:
    """Forget a received signal (each CLI invocation starts afresh; tests)."""
    global _received
    _received = None


# ---------------------------------------------------------------- parent death (Linux)
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(sig: int = signal.SIGTERM, parent_pid: int | None = None,
                    respect_nohup: bool = True) -> bool:
    """Ask the kernel for `sig` when this process's parent dies. If `parent_pid` is given
    and the parent is no longer it (it died before this call), send `sig` now. False where
    it is not supported, or after `nohup` (unless `respect_nohup` is False: a helper
    process that is useless without its parent)."""
    prctl = _prctl()
    if prctl is None or (respect_nohup and _hup_ignored_at_start):
        return False
    if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
    return True


def parent_death_hook(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that ties a child (any program) to this process: it gets `sig` when
    the calling thread of this process ends. None where it is not supported."""
    prctl = _prctl()  # resolved here: the forked child must only make the call
    if prctl is None:
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return hook


@contextmanager
def stopping_new_children(keep: Callable[[], set[int]] = set,
                          timeout: float = 10.0) -> Iterator[None]:
    """On leaving the block, SIGTERM (SIGKILL after `timeout`) the child processes started
    in it that still run, but those that ran before it and those in `keep()`.

    For a library that may leave one behind: pyspark's JVM exits by itself when this
    process's pipe to it closes, but not if a stop signal came while it was starting --
    then it keeps waiting for a handshake that never comes."""
    import psutil

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    try:
        yield
    finally:
        spared = before | keep()
        _stop([p for p in me.children(recursive=True) if p.pid not in spared], timeout)


def _stop(children, timeout: float) -> None:
    import psutil

    for p in children:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
