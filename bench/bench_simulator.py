"""Simulator throughput: `clickstream simulate`'s JSON lines/s with one worker and with the
default (the CPU count), set-up included, written to /dev/null; and without I/O, event
tuples/s (the core) and event dicts/s, one process.

    python -m bench.bench_simulator
"""

from __future__ import annotations

import itertools
import os
import statistics
import time

from services.simulator.model import SimConfig, Simulator
from services.simulator.parallel import default_workers
from services.simulator.run import run_simulate
from shared.cli import DEFAULT_START, parse_time

START = 1767571200000 + 19 * 3_600_000  # a busy evening hour


def _measure(make_iter, n: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in itertools.islice(make_iter(), n):
        pass
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def _simulate(n: int, workers: int) -> float:
    """`clickstream simulate --seed 7 --events n --workers w > /dev/null`, in events/s."""
    with open(os.devnull, "wb") as out:
        t0 = time.perf_counter()
        run_simulate(SimConfig(seed=7), parse_time(DEFAULT_START), n, out, workers)
        return n / (time.perf_counter() - t0)


def run(quick: bool = False) -> list[dict]:
    results = []
    n_lines = 200_000 if quick else 1_000_000
    for workers in sorted({1, default_workers()}):
        runs = [_simulate(n_lines, workers) for _ in range(1 if quick else 3)]
        results.append({
            "name": f"simulate_jsonl_events_per_s_workers_{workers}",
            "value": statistics.median(runs), "unit": "events/s", "runs": runs,
            "target": 200_000,
            "notes": f"clickstream simulate --seed 7 --events {n_lines:,} --workers {workers} "
                     "> /dev/null, set-up included",
        })
    n = 100_000 if quick else 500_000
    sim = Simulator(SimConfig(seed=1, events_per_second=500))
    _ = (sim.population, sim.catalogue, sim._tables)  # set-up is not throughput
    for name, make in (
        ("simulator_events_per_s", lambda: sim.events(START)),
        ("simulator_rows_per_s", lambda: sim.rows(START)),
    ):
        runs = [_measure(make, n) for _ in range(3)]
        wall = [r[0] for r in runs]
        results.append({
            "name": name,
            "value": statistics.median(wall),
            "unit": "events/s",
            "runs": wall,
            "cpu_runs": [r[1] for r in runs],
            "target": 200_000,
            "notes": (f"{n:,} events per run, one process; 'events' are the event dicts of "
                      "shared.events, 'rows' the tuples the CSV path uses; cpu_runs = per CPU "
                      "second (the machine is shared)"),
        })
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
