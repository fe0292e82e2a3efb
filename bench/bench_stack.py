"""The local stack: warm `up` time to all-ready, and each server's idle memory.

Starts a private stack on free ports in a temp folder (never touches the user's).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import psutil

from integration_tests.backends import local_settings
from services.stack.stack import LocalStack


def run(quick: bool = False) -> list[dict]:
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="clickstream-bench-") as tmp:
        settings = local_settings(Path(tmp) / "stack", cassandra_heap="768m", kafka_heap="1g")
        stack = LocalStack(settings, ["kafka", "cassandra", "spark"])
        stack.up()  # first start: formats Kafka storage, creates the schema
        stack.down()
        times = []
        for _ in range(rounds):
            t0 = time.monotonic()
            stack.up()
            times.append(time.monotonic() - t0)
            if _ < rounds - 1:
                stack.down()
        time.sleep(20 if not quick else 5)  # let the JVMs settle to idle before measuring
        rss = {}
        for server in stack.servers():
            pid = server.running()
            rss[server.name] = round(psutil.Process(pid).memory_info().rss / 2**20) if pid else None
        stack.down()
    records = [{
        "name": "stack_warm_up_seconds",
        "value": round(statistics.median(times), 2),
        "unit": "s",
        "runs": [round(t, 2) for t in times],
        "notes": "kafka+cassandra+spark master/worker, launch to every server answering its "
                 "protocol plus the schema step; storage already formatted",
    }]
    for name, mib in rss.items():
        records.append({"name": f"idle_rss_{name}", "value": mib, "unit": "MiB",
                        "notes": "resident memory ~20 s after all-ready, no load"})
    return records
