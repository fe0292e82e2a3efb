"""`make demo` and `clickstream demo` stopped the ways a user's world stops them -- `kill`
(SIGTERM), a closed terminal (SIGHUP to its process group), SIGKILL of `make` or of the
demo itself -- against real Kafka, Cassandra, Spark and the dashboard, on private ports and
folders. Each time, nothing of the demo may survive: no process of its tree, none using its
data folder, no port."""

from __future__ import annotations

import os
import signal
import subprocess

import psutil
import pytest

from integration_tests.helpers import (
    CLI,
    REPO,
    Output,
    cmdline,
    kill_tree,
    listening,
    popen_make,
    settings_env,
    survivors,
)
from shared.clients.ports import free_port

READY = "Ctrl-C stops everything this run started"
ORDERED_STOP = "stopped producer, processor, dashboard, cassandra, kafka"


def _start(settings, via: str) -> subprocess.Popen:
    if via == "make":
        return popen_make(settings, "demo", "RATE=50")
    return subprocess.Popen([*CLI, "demo", "--rate", "50"], env=settings_env(settings),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


@pytest.mark.parametrize("via, sig, to_group", [
    ("make", signal.SIGTERM, False),   # kill <make>: make passes SIGTERM on to the demo
    ("make", signal.SIGHUP, True),     # the terminal closes: SIGHUP to its process group
    ("make", signal.SIGKILL, False),   # make dies at once: the demo is told by the kernel
    ("demo", signal.SIGKILL, False),   # the demo dies at once: its children are told
], ids=["make-SIGTERM", "make-SIGHUP-group", "make-SIGKILL", "demo-SIGKILL"])
def test_pipeline_demo_killed_leaves_nothing_running(private_settings, via, sig, to_group):
    s = private_settings.model_copy(update={"dashboard_port": free_port(),
                                            "spark_shuffle_partitions": 2})
    top = _start(s, via)
    out = Output(top.stdout)
    try:
        out.wait_for(READY, timeout=400)
        tree = [psutil.Process(top.pid), *psutil.Process(top.pid).children(recursive=True)]
        names = " ".join(cmdline(p) for p in tree)
        for part in ("produce", "process --mode stream", "dashboard", "kafka.Kafka",
                     "CassandraDaemon"):
            assert part in names, f"{part} is not running under the demo: {names}"
        (os.killpg if to_group else os.kill)(top.pid, sig)
        top.wait(timeout=300)
        text = out.wait_closed(timeout=300)  # the pipe closes when the demo has exited
    finally:
        if top.poll() is None:
            kill_tree(top.pid)

    assert top.returncode == -sig, text
    assert survivors(tree, s.data_dir, timeout=180) == []
    assert listening(s) == []
    if via == "make":
        # the demo itself stopped in order: the producer first, the servers last
        assert ORDERED_STOP in text, text
        how = signal.SIGTERM if sig == signal.SIGKILL else sig  # SIGKILL: the kernel's SIGTERM
        assert f"interrupted by {how.name}" in text, text
    else:
        # no one stopped them in order: each child took its own clean way out, on the
        # kernel's SIGTERM, the producer flushing what was in flight
        logs = {name: (s.data_dir / "logs" / f"{name}.log").read_text()
                for name in ("producer", "processor", "dashboard")}
        for name, log in logs.items():
            assert "interrupted by SIGTERM" in log, f"{name}:\n{log[-2000:]}"
        assert "\ndone  sent" in logs["producer"], logs["producer"][-2000:]
