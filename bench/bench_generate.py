"""`clickstream generate` for 10 million events: wall time, CPU time (the CLI and its
workers; the machine may be shared) and peak memory (RSS summed over the process tree,
sampled every 100 ms).

    python -m bench.bench_generate
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


def _run_once(days: int, per_day: int, workers: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    try:
        cmd = [sys.executable, "-m", "services.cli", "generate", "--days", str(days), "--out",
               str(out), "--events-per-day", str(per_day), "--seed", "1", "--quiet",
               "--workers", str(workers)]
        c0 = os.times()
        t0 = time.perf_counter()
        proc = psutil.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
                "bytes": sum(p.stat().st_size for p in out.iterdir())}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(quick: bool = False) -> list[dict]:
    days, per_day, repeats = (1, 1_000_000, 1) if quick else (10, 1_000_000, 3)
    runs = [_run_once(days, per_day, 2) for _ in range(repeats)]
    best = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return [
        {"name": "generate_seconds", "value": best["seconds"], "unit": "s",
         "runs": [r["seconds"] for r in runs], "target": 30 * days / 10,
         "cpu_runs": [r["cpu"] for r in runs],
         "notes": f"{best['events']:,} events, {days} CSV days, 2 workers, "
                  f"{best['bytes'] / 1e9:.2f} GB written, including process start-up; "
                  f"cpu_runs = CPU seconds of the CLI and its workers, "
                  f"{best['cpu'] / best['events'] * 1e6:.2f} CPU-µs per event"},
        {"name": "generate_events_per_s", "value": best["events"] / best["seconds"],
         "unit": "events/s", "runs": [r["events"] / r["seconds"] for r in runs],
         "target": 333_333, "notes": "10M events in 30 s"},
        {"name": "generate_peak_rss", "value": best["peak_rss"] / 2**20, "unit": "MiB",
         "runs": [r["peak_rss"] / 2**20 for r in runs], "target": 2048,
         "notes": "RSS summed over the CLI and its workers, sampled every 100 ms"},
    ]


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
