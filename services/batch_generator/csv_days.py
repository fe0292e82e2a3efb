"""Simulated days -> one CSV file per UTC date, written with Polars.

Each file holds exactly the events whose `timestamp` falls on its date (sessions that run
past midnight continue in the next file; late and duplicate noise stays with the event's
date), in event-time order, with the header from the shared schema. Days are independent
given (seed, day), so they are written by a pool of worker processes and the result is
identical whatever the worker count. Memory is bounded by the chunk size, not the day size.

    clickstream generate --days 3 --out data/csv --events-per-day 1000000 --seed 7
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import queue as queue_mod
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from services.errors import ClickstreamError
from services.simulator.model import SimConfig, Simulator
from shared.events import CSV_HEADER, CSV_TIMESTAMP_FORMAT, FIELDS, Kind

DAY_MS = 86_400_000
CHUNK = 50_000  # events per Polars frame


def day_file(out_dir: Path, day_start_ms: int) -> Path:
    day = dt.datetime.fromtimestamp(day_start_ms / 1000, dt.UTC).date()
    return out_dir / f"events-{day.isoformat()}.csv"


def _frame_schema():
    """Polars dtypes to build a chunk with: timestamps as Int64 first (cast afterwards)."""
    import polars as pl

    m = {Kind.STRING: pl.String, Kind.INT: pl.Int32, Kind.LONG: pl.Int64,
         Kind.BOOL: pl.Boolean, Kind.TIMESTAMP: pl.Int64}
    return {f.name: m[f.kind] for f in FIELDS}


_TIMESTAMPS = tuple(f.name for f in FIELDS if f.kind is Kind.TIMESTAMP)


def rows_to_frame(rows: list[tuple]):
    """Event tuples -> a Polars DataFrame with the shared schema."""
    import polars as pl

    columns = list(zip(*rows, strict=True)) if rows else [()] * len(CSV_HEADER)
    df = pl.DataFrame(dict(zip(CSV_HEADER, columns, strict=True)), schema=_frame_schema())
    return df.with_columns(pl.col(n).cast(pl.Datetime("ms", "UTC")) for n in _TIMESTAMPS)


def write_day(config: SimConfig, day_start_ms: int, path: Path, progress=None) -> int:
    """Write one day's events to `path` (atomically); returns the number of events."""
    sim = _simulator(config)
    tmp = path.with_suffix(".csv.partial")
    n = 0
    with open(tmp, "wb") as f:
        first = True
        for rows in sim.rows_by_event_time(day_start_ms, day_start_ms + DAY_MS, CHUNK):
            rows_to_frame(rows).write_csv(
                f, include_header=first, datetime_format=CSV_TIMESTAMP_FORMAT
            )
            first = False
            n += len(rows)
            if progress is not None:
                progress(len(rows))
        if first:  # an empty day still gets its header
            rows_to_frame([]).write_csv(f, include_header=True)
    os.replace(tmp, path)
    return n


_SIMULATORS: dict[SimConfig, Simulator] = {}


def _simulator(config: SimConfig) -> Simulator:
    # one per worker process: the population and catalogue are built once
    sim = _SIMULATORS.get(config)
    if sim is None:
        _SIMULATORS.clear()
        sim = _SIMULATORS[config] = Simulator(config)
    return sim


# ---------------------------------------------------------------- worker pool
_QUEUE = None


def _init_worker(q) -> None:
    global _QUEUE
    _QUEUE = q


def _worker(config: SimConfig, day_start_ms: int, path: str) -> int:
    q = _QUEUE
    return write_day(config, day_start_ms, Path(path), progress=q.put if q else None)


@dataclass
class GenerateResult:
    files: list[Path]
    events: int
    seconds: float


def check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".clickstream-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ClickstreamError(
            f"cannot write to {out_dir}: {e.strerror or e}; choose another --out folder"
        ) from None


def run_generate(
    config: SimConfig,
    days: int,
    out_dir: Path,
    start_ms: int,
    workers: int = 2,
    progress: bool = True,
) -> GenerateResult:
    """Write `days` CSV files (one per UTC date from `start_ms`'s date) into `out_dir`."""
    if days < 1:
        raise ClickstreamError(f"--days must be >= 1, got {days}")
    check_writable(out_dir)
    first_day = start_ms // DAY_MS * DAY_MS
    jobs = [(first_day + d * DAY_MS, day_file(out_dir, first_day + d * DAY_MS))
            for d in range(days)]
    expected = int(config.events_per_second * 86_400 * days)
    bar = _bar(expected, progress)
    t0 = time.perf_counter()
    total = 0
    try:
        if workers <= 1 or days == 1 and workers <= 1:
            for day_ms, path in jobs:
                total += write_day(config, day_ms, path, progress=bar.update)
        else:
            ctx = mp.get_context("spawn")  # polars is not fork-safe once its pool runs
            q = ctx.Queue()
            with ProcessPoolExecutor(min(workers, days), mp_context=ctx,
                                     initializer=_init_worker, initargs=(q,)) as pool:
                futures = [pool.submit(_worker, config, d, str(p)) for d, p in jobs]
                while not all(f.done() for f in futures):
                    _drain(q, bar, timeout=0.2)
                _drain(q, bar, timeout=0)
                total = sum(f.result() for f in futures)
    finally:
        bar.close()
    return GenerateResult([p for _, p in jobs], total, time.perf_counter() - t0)


def _drain(q, bar, timeout: float) -> None:
    try:
        bar.update(q.get(timeout=timeout) if timeout else q.get_nowait())
        while True:
            bar.update(q.get_nowait())
    except queue_mod.Empty:
        pass


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="ev", unit_scale=True, disable=not enabled,
                desc="generate", smoothing=0.1)
