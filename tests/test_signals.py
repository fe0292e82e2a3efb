"""shared.signals: every stop signal takes Ctrl-C's path once; children die with their
parent. Real signals and real processes (a few hundred milliseconds), no servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import click
import psutil
import pytest
from click.testing import CliRunner

from services.cli import _Group
from shared import signals
from shared.settings import REPO_ROOT


@pytest.fixture
def handlers():
    """signals.install() in this process, undone afterwards."""
    previous = {}

    def install(**kw):
        previous.update(signals.install(**kw))

    yield install
    signals.restore(previous)
    signals.reset()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=lambda s: s.name)
def test_signals_each_stop_signal_raises_keyboard_interrupt_once(handlers, sig, capfd):
    handlers()
    with pytest.raises(KeyboardInterrupt) as caught:
        os.kill(os.getpid(), sig)
    assert isinstance(caught.value, signals.Interrupted) and caught.value.signum == sig
    assert signals.received() == sig and signals.exit_code() == 128 + sig

    os.kill(os.getpid(), signal.SIGTERM)  # a second signal must not break the shutdown
    assert signals.received() == sig  # the first one is what counts
    assert "already stopping" in capfd.readouterr().err


def test_signals_on_stop_calls_back_instead_of_raising(handlers):
    calls = []
    handlers(on_stop=lambda: calls.append(1))
    os.kill(os.getpid(), signal.SIGHUP)
    os.kill(os.getpid(), signal.SIGTERM)
    assert calls == [1, 1] and signals.received() == signal.SIGHUP


def test_signals_check_raises_for_a_signal_whose_interrupt_was_swallowed(handlers):
    handlers()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except KeyboardInterrupt:
        pass  # as a client library that catches BaseException would
    with pytest.raises(signals.Interrupted):
        signals.check()


def _group_with(command) -> click.Group:
    group = _Group(name="clickstream")
    group.add_command(click.command(name="job")(command))
    return group


def test_cli_interrupted_command_exits_128_plus_signal_even_if_it_swallows_it(handlers):
    handlers()
    stopped = []

    def job():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # never reached: the signal interrupts here
        except KeyboardInterrupt:
            stopped.append("cleaned up")  # and returns normally, as run_stream does

    result = CliRunner().invoke(_group_with(job), ["job"])
    assert stopped == ["cleaned up"]
    assert result.exit_code == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in result.output


def test_cli_command_that_ends_by_itself_exits_0(handlers):
    handlers()
    result = CliRunner().invoke(_group_with(lambda: None), ["job"])
    assert result.exit_code == 0, result.output


def _python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# A middle process starts a grandchild tied to it, prints the grandchild's pid, then waits
# to be killed. {tie} is how the grandchild is tied.
MIDDLE = """
    import subprocess, sys, time
    from shared import signals
    child = subprocess.Popen({cmd}, {tie})
    print(child.pid, flush=True)
    time.sleep(600)
"""

# A Python grandchild that ties itself and, told to stop, takes the clean path.
SELF_TIED = """
    import os, sys, time
    from shared import signals
    signals.install()
    signals.die_with_parent(parent_pid=int(sys.argv[1]))
    try:
        print("ready", flush=True)
        time.sleep(600)
    except KeyboardInterrupt as e:
        open(sys.argv[2], "w").write(f"stopped by {e}")
"""


def _kill_middle_and_wait(middle: subprocess.Popen, ready: bool = False) -> psutil.Process:
    grandchild = psutil.Process(int(middle.stdout.readline()))
    if ready:  # the grandchild shares the pipe: it says when it has tied itself
        assert middle.stdout.readline() == "ready\n"
    middle.kill()
    middle.wait(10)
    grandchild.wait(timeout=20)  # raises TimeoutExpired if it lives on
    return grandchild


def test_die_with_parent_stops_a_python_child_cleanly_when_its_parent_is_killed(tmp_path):
    note = tmp_path / "note"
    cmd = repr([sys.executable, "-c", textwrap.dedent(SELF_TIED), "PARENT", str(note)])
    cmd = cmd.replace("'PARENT'", "str(os.getpid())")
    middle = _python("import os\n" + textwrap.dedent(MIDDLE).format(cmd=cmd, tie="text=True"))
    try:
        _kill_middle_and_wait(middle, ready=True)
    finally:
        middle.kill()
    assert note.exists(), middle.stderr.read()
    assert note.read_text() == "stopped by SIGTERM"


def test_parent_death_hook_stops_any_program_when_its_parent_is_killed():
    # `sleep` stands for the server JVMs: a program that cannot tie itself
    middle = _python(MIDDLE.format(cmd="['sleep', '600']",
                                   tie="preexec_fn=signals.parent_death_hook()"))
    try:
        _kill_middle_and_wait(middle)
    finally:
        middle.kill()


def test_nohup_keeps_sighup_ignored_and_the_process_independent():
    probe = _python("""
        import os, signal
        from shared import signals
        signals.install()
        os.kill(os.getpid(), signal.SIGHUP)
        print(signals.received(), signals.die_with_parent())
    """, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    out, err = probe.communicate(timeout=30)
    assert out.split() == ["None", "False"], err


def test_stopping_new_children_stops_only_those_started_in_the_block():
    before = subprocess.Popen(["sleep", "600"])
    try:
        with signals.stopping_new_children(timeout=5):
            inside = subprocess.Popen(["sleep", "601"])
        assert not psutil.pid_exists(inside.pid)  # stopped and reaped
        assert before.poll() is None
    finally:
        before.kill()
        before.wait()


class _Router:
    batches = 3
    dead_letters = 0


@pytest.mark.parametrize("args, code", [([], 128 + signal.SIGINT), (["--available-now"], 0)],
                         ids=["endless", "available-now"])
def test_process_stream_that_returns_without_an_end_condition_was_interrupted(
        monkeypatch, args, code):
    # pyspark's SIGINT handler replaces ours and run_stream absorbs its KeyboardInterrupt:
    # an endless stream that returns can only have been stopped by Ctrl-C
    import services.processor.stream as stream
    from services.cli import cli

    monkeypatch.setattr(stream, "run_stream", lambda *a, **kw: _Router())
    signals.reset()
    result = CliRunner().invoke(cli, ["process", "--mode", "stream", *args])
    assert result.exit_code == code, result.output
    assert ("interrupted by SIGINT" in result.output) == bool(code)
    assert "stopped after 3 micro-batches" in result.output


def test_producer_feeder_dies_with_the_producer():
    # killed with a full queue, the feeder would block in put() for ever
    middle = _python("""
        import time
        from services.producer.run import Feeder
        from services.simulator.model import SimConfig
        feeder = Feeder(SimConfig(seed=1, events_per_second=1000.0), 1767571200000, None)
        print(feeder.process.pid, flush=True)
        time.sleep(600)
    """)
    try:
        _kill_middle_and_wait(middle)
    finally:
        middle.kill()
