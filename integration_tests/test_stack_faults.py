"""The local stack under bad input and faults: each gets one clear line and leaves nothing
half-started. These start their own private servers (Kafka only where that suffices)."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from integration_tests.helpers import java_processes_using, popen_cli, run_cli
from services.stack.stack import PORT_SETTINGS, LocalStack
from shared.clients.ports import is_listening


def _all_ports(settings) -> list[int]:
    return [getattr(settings, name) for name in PORT_SETTINGS]


def test_stack_port_in_use_names_port_and_setting_and_starts_nothing(private_settings):
    s = private_settings
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", s.cassandra_port))
    blocker.listen()
    try:
        r = run_cli(s, "up")
    finally:
        blocker.close()
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    assert str(s.cassandra_port) in lines[0] and "CLICKSTREAM_CASSANDRA_PORT" in lines[0]
    assert "Traceback" not in r.stderr
    # Kafka had been launched before the clash was found: it must have been stopped again
    assert java_processes_using(s.data_dir) == []
    assert not is_listening(s.kafka_port)


def test_stack_up_twice_is_a_noop_and_down_leaves_no_process_or_port(private_settings):
    s = private_settings
    first = run_cli(s, "up", "--only", "kafka")
    assert first.returncode == 0, first.stderr
    pid = LocalStack(s, ["kafka"]).servers()[0].running()
    assert pid is not None

    second = run_cli(s, "up", "--only", "kafka")
    assert second.returncode == 0, second.stderr
    assert "started" not in second.stdout
    assert LocalStack(s, ["kafka"]).servers()[0].running() == pid

    assert run_cli(s, "status", "--only", "kafka").returncode == 0
    assert run_cli(s, "status", "--only", "kafka,cassandra").returncode == 1  # cassandra is down

    down = run_cli(s, "down")
    assert down.returncode == 0 and "stopped kafka" in down.stdout
    assert not psutil.pid_exists(pid)
    assert java_processes_using(s.data_dir) == []
    assert not any(is_listening(p) for p in _all_ports(s))

    again = run_cli(s, "down")
    assert again.returncode == 0 and "nothing was running" in again.stdout


def test_stack_stale_pid_file_is_detected_and_cleaned(private_settings):
    s = private_settings
    kafka = LocalStack(s, ["kafka"]).servers()[0]
    dead = subprocess.Popen(["true"])
    dead.wait()
    kafka.pidfile.write(dead.pid)  # as if a crash had left it behind

    r = run_cli(s, "status", "--only", "kafka")
    assert r.returncode == 1 and "not running" in r.stdout
    assert not kafka.pidfile.path.exists()


def test_stack_server_dying_at_start_shows_its_last_log_lines(private_settings):
    s = private_settings.model_copy(update={"kafka_heap": "64x"})  # the JVM refuses this
    r = run_cli(s, "up", "--only", "kafka")
    assert r.returncode == 1
    assert "kafka" in r.stderr and "exited while starting" in r.stderr
    assert "Invalid maximum heap size" in r.stderr  # the log tail reached the user
    assert "Traceback" not in r.stderr
    assert java_processes_using(s.data_dir) == []


def _open_when_held(fifo: Path, proc: subprocess.Popen, timeout: float = 180):
    """Open the FIFO that `up` holds at (CLICKSTREAM_TEST_HOLD_FIFO) for writing: that
    succeeds only once `up` has launched its servers and waits there. Fails, rather than
    hanging, if `up` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.fdopen(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "w")
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate(timeout=60)
            raise AssertionError(f"`up` never held at {fifo} (exit {proc.returncode}):\n"
                                 f"{out}\n{err}")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=lambda s: s.name)
def test_stack_signal_during_up_stops_what_it_started(private_settings, tmp_path, sig):
    """Ctrl-C, `kill` and a closed terminal, each while `up` waits for its two freshly
    launched servers: both are stopped, `up` says so and exits 128 + the signal."""
    fifo = tmp_path / "hold"
    os.mkfifo(fifo)
    s = private_settings.model_copy(update={"test_hold_fifo": fifo})
    proc = popen_cli(s, "up", "--only", "kafka,cassandra")
    with _open_when_held(fifo, proc):
        commands = java_processes_using(s.data_dir)
        assert any("kafka.Kafka " in c for c in commands), commands
        assert any("CassandraDaemon" in c for c in commands), commands
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + sig, (out, err)
    assert "stopped cassandra" in out and "stopped kafka" in out, out
    assert f"interrupted by {sig.name}" in err, err
    assert "Traceback" not in err
    assert java_processes_using(s.data_dir) == []
    assert not any(is_listening(p) for p in _all_ports(s))


@pytest.mark.parametrize("case", ["missing", "too_new"])
def test_stack_java_missing_or_unsupported_is_one_line(private_settings, tmp_path, case):
    if case == "missing":
        java_home = tmp_path / "nojdk"
        java_home.mkdir()
    else:
        jvm = Path("/usr/lib/jvm")
        candidates = sorted(jvm.glob("*25*")) + sorted(jvm.glob("*21*"))
        candidates = [c for c in candidates if (c / "bin" / "java").exists()]
        if not candidates:
            pytest.skip("no Java newer than 17 installed to test with")
        java_home = candidates[0]
    s = private_settings.model_copy(update={"java_home": java_home})
    r = run_cli(s, "up", "--only", "kafka")
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "CLICKSTREAM_JAVA_HOME" in lines[0]
    assert java_processes_using(s.data_dir) == []
