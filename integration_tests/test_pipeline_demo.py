"""`clickstream demo` as a user runs it: everything comes up, events flow, the dashboard
answers, and Ctrl-C stops every process it started -- on private ports and folders."""

from __future__ import annotations

import signal
import time
import urllib.request

import psutil

from integration_tests.helpers import kill_tree, listening, popen_cli, survivors
from services.pipeline.run import events_in_topic
from shared.clients.ports import free_port


def test_pipeline_demo_runs_and_ctrl_c_stops_everything(private_settings):
    s = private_settings.model_copy(update={"dashboard_port": free_port(),
                                            "spark_shuffle_partitions": 2})
    demo = popen_cli(s, "demo", "--rate", "200")
    tree: list[psutil.Process] = []
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
        tree = [psutil.Process(demo.pid), *psutil.Process(demo.pid).children(recursive=True)]
        assert any("java" in p.name() for p in tree), "no servers?"
        demo.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does
        out, err = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            kill_tree(demo.pid)
    assert demo.returncode == 128 + signal.SIGINT, err[-3000:]
    assert "stopped producer, processor, dashboard, cassandra, kafka" in out
    assert "interrupted by SIGINT" in err
    assert survivors(tree, s.data_dir, timeout=60) == []
    assert listening(s) == []
