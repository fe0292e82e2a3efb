"""Simulator throughput without I/O: event tuples/s (the core) and event dicts/s.

    python -m bench.bench_simulator
"""

from __future__ import annotations

import itertools
import statistics
import time

from services.simulator.model import SimConfig, Simulator

START = 1767571200000 + 19 * 3_600_000  # a busy evening hour


def _measure(make_iter, n: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in itertools.islice(make_iter(), n):
        pass
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def run(quick: bool = False) -> list[dict]:
    n = 100_000 if quick else 500_000
    sim = Simulator(SimConfig(seed=1, events_per_second=500))
    _ = (sim.population, sim.catalogue, sim._tables)  # set-up is not throughput
    results = []
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
