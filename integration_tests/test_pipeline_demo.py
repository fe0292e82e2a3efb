"""`clickstream demo` as a user runs it: everything comes up, events flow, the dashboard
answers, and Ctrl-C stops every process it started — on private ports and folders."""

from __future__ import annotations

import signal
import time
import urllib.request

import psutil

from integration_tests.helpers import popen_cli
from services.pipeline.run import events_in_topic
from services.stack.ports import free_port, is_listening


def _processes_under(path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline", "environ"]):
        try:
            if str(path) in " ".join(p.info["cmdline"] or []) or str(path) in str(
                    (p.info["environ"] or {}).get("CLICKSTREAM_DATA_DIR", "")):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def test_pipeline_demo_runs_and_ctrl_c_stops_everything(private_settings):
    s = private_settings.model_copy(update={"dashboard_port": free_port(),
                                            "spark_shuffle_partitions": 2})
    demo = popen_cli(s, "demo", "--rate", "200")
    try:
        url = f"http://127.0.0.1:{s.dashboard_port}/liveness"
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and demo.poll() is None:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(1)
        assert demo.poll() is None, demo.communicate()[1][-3000:]
        while time.monotonic() < deadline and not (events_in_topic(s) or 0) > 0:
            time.sleep(1)
        assert (events_in_topic(s) or 0) > 0, "the producer sent nothing"
        assert [p for p in _processes_under(s.data_dir) if "java" in p.name()], "no servers?"
    finally:
        demo.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        out, err = demo.communicate(timeout=300)
    assert demo.returncode == 0, err[-3000:]
    assert "stopped processor, producer, dashboard, cassandra, kafka" in out
    time.sleep(1)
    assert _processes_under(s.data_dir) == []
    assert not any(is_listening(p) for p in (s.kafka_port, s.cassandra_port, s.dashboard_port))
