"""Scenario traffic through the real job, for the scenario integration tests.

Simulated events (with `--scenario` windows, as `clickstream generate --scenario` draws
them) are written as one CSV file, and the batch job (`services.processor.batch.run_batch`,
Spark -> Cassandra) aggregates each file into the streaming or the `_batch` tables of a
private keyspace: the tables the dashboard reads, written by the code that writes them in
production. The streaming job would write the same rows for these events (the truth tests
check both jobs against the same Polars computation).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

from integration_tests.helpers import REPO, read_table
from services.simulator.scenarios import Window
from shared import tables as tb
from shared.settings import Settings, settings_env

#: one Spark session for every (file, tables) pair: its start-up is most of a small run
JOB = """
import sys
from services.processor.batch import run_batch
from services.processor.session import BATCH_DRIVER_MEMORY, build_session
from shared.settings import get_settings
settings = get_settings()
spark = build_session(settings, "scenario-tests", "local[2]", BATCH_DRIVER_MEMORY)
try:
    for path, mode in zip(sys.argv[1::2], sys.argv[2::2]):
        r = run_batch(settings, path, spark=spark, into=(mode,))
        print(f"{mode}: {r.input_rows} rows in {r.seconds:.1f}s", flush=True)
finally:
    spark.stop()
"""


def write_events(path: Path, seed: int, events_per_second: float, start_ms: int, end_ms: int,
                 windows: tuple[Window, ...] = ()) -> int:
    """The events with start_ms <= timestamp < end_ms of this seed, with `windows`, as one
    CSV file (the path `generate` and `--seed-demo` write through); returns their number."""
    from services.batch_generator.csv_days import write_range
    from services.simulator.model import SimConfig

    config = SimConfig(seed=seed, events_per_second=events_per_second, scenarios=windows)
    return write_range(config, start_ms, end_ms, path)


def run_batch_job(settings: Settings, *jobs: tuple[Path, str], timeout: float = 900) -> str:
    """Run the batch job over each (CSV file, "stream" | "batch") in one Spark session
    (`local[2]`), in a child process: its JVM ends with it. Returns the job's output."""
    args = [str(a) for job in jobs for a in job]
    r = subprocess.run([sys.executable, "-c", JOB, *args], cwd=REPO, env=settings_env(settings),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def read_frames(settings: Settings, names: tuple[str, ...], suffix: str = ""
                ) -> dict[str, pl.DataFrame]:
    """Every row of the tables `names` (+ `suffix`, "" or "_batch"), read back from
    Cassandra, as frames with the tables' columns (timestamps in UTC)."""
    frames = {}
    for name in names:
        columns = list(tb.table(name).column_names)
        frames[name] = pl.DataFrame(read_table(settings, name + suffix), schema=columns,
                                    orient="row")
    return frames
