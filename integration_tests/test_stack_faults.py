"""The local stack under bad input and faults: each gets one clear line and leaves nothing
half-started. These start their own private servers (Kafka only where that suffices)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from integration_tests.helpers import popen_cli, run_cli
from services.stack.ports import is_listening
from services.stack.stack import LocalStack


def _java_processes_under(data_dir: Path) -> list[str]:
    """Command lines of the live java processes that use data_dir. Zombies are left out: an
    exited JVM waiting to be reaped holds no port or file, and its cmdline can't be read."""
    out = []
    for p in psutil.process_iter(["name", "cmdline", "status"]):
        info = p.info
        if info["status"] == psutil.STATUS_ZOMBIE or "java" not in (info["name"] or ""):
            continue
        cmdline = " ".join(info["cmdline"] or [])
        if str(data_dir) in cmdline:
            out.append(cmdline)
    return out


def _all_ports(settings) -> list[int]:
    return [settings.kafka_port, settings.kafka_controller_port, settings.cassandra_port,
            settings.cassandra_storage_port, settings.cassandra_jmx_port]


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
    assert _java_processes_under(s.data_dir) == []
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
    assert _java_processes_under(s.data_dir) == []
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
    assert _java_processes_under(s.data_dir) == []


def test_stack_ctrl_c_during_up_stops_what_it_started(private_settings):
    s = private_settings
    proc = popen_cli(s, "up", "--only", "kafka,cassandra")

    def servers_running() -> bool:  # the two server JVMs, not Kafka's one-off formatter
        cmds = _java_processes_under(s.data_dir)
        return (any("kafka.Kafka " in c for c in cmds)
                and any("CassandraDaemon" in c for c in cmds))

    # wait until both JVMs were launched, then interrupt like a terminal would
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not servers_running():
        time.sleep(0.1)
    assert proc.poll() is None and servers_running(), proc.communicate(timeout=60)[1][-2000:]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "interrupted" in err
    assert _java_processes_under(s.data_dir) == []


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
    assert _java_processes_under(s.data_dir) == []
