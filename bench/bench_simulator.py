"""Simulator throughput: `clickstream simulate`'s JSON lines per second, start-up included,
written to /dev/null, with one worker and with the CPU count; and in one process, without
I/O: JSON lines (`Simulator.block_lines`, what a worker does), event tuples and event dicts.

`simulate` runs as the CLI in a process of its own (wall and CPU time of it and its
workers; the machine may be shared), medians of the runs.

    python -m bench.bench_simulator                 # 1M lines, 3 runs of each
    python -m bench.bench_simulator --quick         # 200k lines, 1 run of each
    python -m bench.bench_simulator --baseline DIR  # also DIR (a checkout, e.g. a git
                                                    # worktree of an older commit), runs
                                                    # alternating, with the ratios
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START = 1767571200000 + 19 * 3_600_000  # a busy evening hour


def _simulate(n: int, workers: int, repo: Path = REPO) -> dict:
    """`clickstream simulate --seed 7 --events n --workers w > /dev/null` in `repo`."""
    cmd = [sys.executable, "-m", "services.cli", "simulate", "--seed", "7", "--events",
           str(n), "--workers", str(workers)]
    c0 = os.times()
    t0 = time.perf_counter()
    # the checkout's own code: `-m` puts the working directory first on sys.path
    subprocess.run(cmd, cwd=repo, stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - t0
    c1 = os.times()  # the CLI has waited for its workers, and we for the CLI
    cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    return {"seconds": seconds, "cpu": cpu, "load": os.getloadavg()[0]}


def _simulate_records(n: int, runs: int, baseline: Path | None) -> list[dict]:
    from services.simulator.parallel import default_workers

    records = []
    for workers in sorted({1, default_workers()}):
        measured, base = [], []
        for _ in range(runs):  # alternating, so that a change of load hits each alike
            if baseline is not None:
                base.append(_simulate(n, workers, baseline))
            measured.append(_simulate(n, workers))
        rate = statistics.median(n / r["seconds"] for r in measured)
        cpu = statistics.median(r["cpu"] for r in measured)
        loads = [r["load"] for r in measured + base]
        record = {
            "name": f"simulate_jsonl_events_per_s_workers_{workers}",
            "value": rate, "unit": "events/s",
            "runs": [n / r["seconds"] for r in measured],
            "cpu_runs": [r["cpu"] for r in measured],
            "target": 200_000,
            "notes": f"clickstream simulate --seed 7 --events {n:,} --workers {workers} "
                     f"> /dev/null, start-up included; {cpu / n * 1e6:.2f} CPU-µs per line "
                     f"(the CLI and its workers, median); load average "
                     f"{min(loads):.1f}-{max(loads):.1f}",
        }
        if base:
            b_rate = statistics.median(n / r["seconds"] for r in base)
            b_cpu = statistics.median(r["cpu"] for r in base)
            record.update(baseline=b_rate, baseline_runs=[n / r["seconds"] for r in base],
                          baseline_cpu_runs=[r["cpu"] for r in base],
                          ratio=rate / b_rate, cpu_ratio=cpu / b_cpu,
                          baseline_notes=f"the same in {baseline}")
        records.append(record)
    return records


def _measure(make_iter, n: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in itertools.islice(make_iter(), n):
        pass
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def _block_lines(sim, encoder):
    block = START // 60_000
    while True:
        yield from sim.block_lines(block, encoder)
        block += 1


def run(quick: bool = False, runs: int | None = None, baseline: Path | None = None) -> list[dict]:
    from services.simulator.lines import line_encoder
    from services.simulator.model import SimConfig, Simulator

    results = _simulate_records(200_000 if quick else 1_000_000, runs or (1 if quick else 3),
                                baseline)
    n = 100_000 if quick else 500_000
    sim = Simulator(SimConfig(seed=1, events_per_second=500))
    _ = (sim.population, sim.catalogue, sim._tables)  # set-up is not throughput
    encoder = line_encoder("1")
    for name, make, what in (
        ("simulator_lines_per_s", lambda: _block_lines(sim, encoder),
         "(sent_at, JSON line) pairs of Simulator.block_lines, as a simulate worker makes "
         "them (not sorted)"),
        ("simulator_events_per_s", lambda: sim.events(START), "the event dicts of "
         "shared.events"),
        ("simulator_rows_per_s", lambda: sim.rows(START), "event tuples in delivery order"),
    ):
        measured = [_measure(make, n) for _ in range(3)]
        wall = [r[0] for r in measured]
        results.append({
            "name": name,
            "value": statistics.median(wall),
            "unit": "events/s",
            "runs": wall,
            "cpu_runs": [r[1] for r in measured],
            "target": 200_000,
            "notes": f"{n:,} events per run, one process, no I/O: {what}; cpu_runs = per "
                     "CPU second (the machine is shared)",
        })
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_simulator",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k lines, 1 run of each")
    parser.add_argument("--runs", type=int, help="runs of each simulate (default 3)")
    parser.add_argument("--baseline", type=Path,
                        help="another checkout to run alternately, for the ratios")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.runs, args.baseline), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
