"""`clickstream generate` of 10 million events, clean and noisy: time, CPU and peak RSS.

Noisy is late sends, duplicates and malformed payloads (`NOISE`). Wall time, CPU time (the
CLI and its workers; the machine may be shared) and peak memory (RSS summed over the
process tree, sampled every 100 ms), medians of the runs.

    python -m bench.bench_generate                 # 10 days of 1M events, 3 runs of each
    python -m bench.bench_generate --quick         # 1 day, 1 run of each
    python -m bench.bench_generate --baseline DIR  # also DIR (a checkout, e.g. a git
                                                   # worktree of an older commit), runs
                                                   # alternating, with the ratios
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
WORKERS = 2
# the noise the README quotes: 2% late (2 min median), 1% sent twice, 1% malformed (drawn,
# not written: a typed CSV cannot hold them)
NOISE = ("--late-rate", "0.02", "--duplicate-rate", "0.01", "--malformed-rate", "0.01")
VARIANTS = {"clean": (), "noisy": NOISE}


def _run_once(days: int, per_day: int, workers: int, extra: tuple[str, ...] = (),
              repo: Path = REPO) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    try:
        cmd = [sys.executable, "-m", "services.cli", "generate", "--days", str(days), "--out",
               str(out), "--events-per-day", str(per_day), "--seed", "1", "--quiet",
               "--workers", str(workers), *extra]
        c0 = os.times()
        t0 = time.perf_counter()
        # the checkout's own code: `-m` puts the working directory first on sys.path
        proc = psutil.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        stdout, stderr = proc.communicate()
        c1 = os.times()  # the CLI has waited for its workers, and we for the CLI
        cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
        if proc.returncode:
            raise RuntimeError(stderr.decode()[-2000:])
        words = stdout.decode().split()
        events = int(words[1].replace(",", ""))
        return {"seconds": seconds, "cpu": cpu, "events": events, "peak_rss": peak,
                "bytes": sum(p.stat().st_size for p in out.iterdir()),
                "load": os.getloadavg()[0]}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _records(variant: str, runs: list[dict], days: int, base: list[dict] | None) -> list[dict]:
    prefix = "generate" if variant == "clean" else f"generate_{variant}"
    seconds = _median(runs, "seconds")
    events = runs[0]["events"]
    cpu = _median(runs, "cpu")
    notes = (f"{events:,} events, {days} CSV days, {WORKERS} workers, {variant}"
             f"{' (' + ' '.join(VARIANTS[variant]) + ')' if VARIANTS[variant] else ''}, "
             f"{runs[0]['bytes'] / 1e9:.2f} GB written, including process start-up; "
             f"cpu_runs = CPU seconds of the CLI and its workers, "
             f"{cpu / events * 1e6:.2f} CPU-µs per event (median); load average "
             f"{min(r['load'] for r in runs):.1f}-{max(r['load'] for r in runs):.1f}")
    time_record = {"name": f"{prefix}_seconds", "value": seconds, "unit": "s",
                   "runs": [r["seconds"] for r in runs], "target": 30 * days / 10,
                   "cpu_runs": [r["cpu"] for r in runs], "notes": notes}
    if base:
        b_seconds, b_cpu = _median(base, "seconds"), _median(base, "cpu")
        time_record.update(
            baseline=b_seconds, baseline_runs=[r["seconds"] for r in base],
            baseline_cpu_runs=[r["cpu"] for r in base],
            ratio=seconds / b_seconds, cpu_ratio=cpu / b_cpu)
    return [
        time_record,
        {"name": f"{prefix}_events_per_s", "value": events / seconds, "unit": "events/s",
         "runs": [r["events"] / r["seconds"] for r in runs], "target": 333_333,
         "notes": "10M events in 30 s"},
        {"name": f"{prefix}_peak_rss", "value": _median(runs, "peak_rss") / 2**20,
         "unit": "MiB", "runs": [r["peak_rss"] / 2**20 for r in runs], "target": 2048,
         "notes": "RSS summed over the CLI and its workers, sampled every 100 ms"},
    ]


def run(quick: bool = False, runs: int | None = None, baseline: Path | None = None,
        variants: tuple[str, ...] = tuple(VARIANTS)) -> list[dict]:
    days, per_day = (1, 1_000_000) if quick else (10, 1_000_000)
    repeats = runs or (1 if quick else 3)
    measured: dict[str, list[dict]] = {v: [] for v in variants}
    base: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(repeats):  # alternating, so that a change of load hits each alike
        for v in variants:
            if baseline is not None:
                base[v].append(_run_once(days, per_day, WORKERS, VARIANTS[v], baseline))
            measured[v].append(_run_once(days, per_day, WORKERS, VARIANTS[v]))
    return [r for v in variants
            for r in _records(v, measured[v], days, base[v] if baseline else None)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_generate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 day, 1 run of each")
    parser.add_argument("--runs", type=int, help="runs of each variant (default 3)")
    parser.add_argument("--only", choices=tuple(VARIANTS), help="one variant")
    parser.add_argument("--baseline", type=Path,
                        help="another checkout to run alternately, for the ratios")
    args = parser.parse_args(argv)
    variants = (args.only,) if args.only else tuple(VARIANTS)
    print(json.dumps(run(args.quick, args.runs, args.baseline, variants), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
