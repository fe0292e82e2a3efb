"""Simulated days -> one CSV file per UTC date, written with Polars.

Each file holds exactly the events whose `timestamp` falls on its date (sessions that run
past midnight continue in the next file; late and duplicate noise stays with the event's
date), in event-time order, with the header from the shared schema. Days are independent
given (seed, day), so they are written by a pool of worker processes and the result is
identical whatever the worker count. Memory is bounded by the chunk size, not the day size.
Without noise, chunks are built column by column (see `day_frames`).

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

from services.batch_generator.versions import DEFAULT_MODE, as_sent
from services.simulator.model import (
    BLOCK_MS,
    MAX_SESSION_MS,
    PARTIAL_FIELDS,
    SESSION_FIELDS,
    SimConfig,
    Simulator,
)
from shared.errors import ClickstreamError
from shared.events import CSV_HEADER, CSV_TIMESTAMP_FORMAT, FIELDS, SCHEMA_VERSION, Kind

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


def write_day(config: SimConfig, day_start_ms: int, path: Path, progress=None,
              schema_version: str = DEFAULT_MODE) -> int:
    """Write one day's events to `path` (atomically); returns the number of events."""
    return write_range(config, day_start_ms, day_start_ms + DAY_MS, path, progress,
                       schema_version)


def write_range(config: SimConfig, start_ms: int, end_ms: int, path: Path,
                progress=None, schema_version: str = DEFAULT_MODE) -> int:
    """Write the events with `start_ms <= timestamp < end_ms` to `path` as one CSV file
    (atomically), in the versions `schema_version` picks (`versions.as_sent`); returns
    the number of events."""
    import polars as pl

    sim = _simulator(config)
    tmp = path.with_suffix(".csv.partial")
    n = 0
    with open(tmp, "wb") as f:
        first = True
        for df in day_frames(sim, start_ms, end_ms, CHUNK):
            df = as_sent(df, schema_version)
            # the same text, but Polars formats naive datetimes faster than UTC ones
            df.with_columns(pl.col(*_TIMESTAMPS).dt.replace_time_zone(None)).write_csv(
                f, include_header=first, datetime_format=CSV_TIMESTAMP_FORMAT)
            first = False
            n += df.height
            if progress is not None:
                progress(df.height)
        if first:  # an empty day still gets its header
            as_sent(rows_to_frame([]), schema_version).write_csv(f, include_header=True)
    os.replace(tmp, path)
    return n


def day_frames(sim: Simulator, start_ms: int, end_ms: int, chunk: int = CHUNK):
    """DataFrames (shared schema) of the events with `start_ms <= timestamp < end_ms`, in
    event-time order, about `chunk` rows each: the same events, in the same order, as
    `rows_to_frame` over `Simulator.rows_by_event_time`.

    Without noise the frames are built column-wise (`Simulator.block_columns`): per-session
    constants once per session, expanded by a gather; ids, collector times and page
    durations derived in bulk. With noise or scenarios on, the row path is used.
    """
    if sim.config.noise.any or sim.config.scenarios:
        for rows in sim.rows_by_event_time(start_ms, end_ms, chunk):
            yield rows_to_frame(rows)
        return
    import polars as pl

    block = (start_ms - MAX_SESSION_MS) // BLOCK_MS - 1
    last_block = (end_ms - 1) // BLOCK_MS
    pending = None  # generated, sorted, not yet final (timestamp >= the next block's start)
    events: list[tuple] = []
    draws: list[float] = []
    sessions: list[tuple] = []
    lat = sim.latency_table
    while block <= last_block:
        sim.block_columns(block, events, draws, sessions)
        block += 1
        if len(events) < chunk and block <= last_block:
            continue
        frame = _columns_frame(events, draws, sessions, lat)
        events, draws, sessions = [], [], []
        if pending is not None:
            frame = pl.concat([pending, frame], how="vertical")
        # stable: equal timestamps keep generation order, like the row path's list sort
        frame = frame.sort("timestamp", maintain_order=True)
        # later sessions start (and so have events) at or after the next block's start
        cutoff = min(block * BLOCK_MS, end_ms)
        ts = frame.get_column("timestamp")
        lo = ts.search_sorted(start_ms, side="left")
        hi = ts.search_sorted(cutoff, side="left")
        pending = frame.slice(hi) if block <= last_block else None
        if hi > lo:
            yield frame.slice(lo, hi - lo).with_columns(
                pl.col(n).cast(pl.Datetime("ms", "UTC")) for n in _TIMESTAMPS)


def _columns_frame(events: list[tuple], draws: list[float], sessions: list[tuple], lat):
    """`block_columns` output -> a DataFrame in CSV_HEADER order, timestamps as Int64."""
    import numpy as np
    import polars as pl

    schema = _frame_schema()
    n = len(events)
    if not n:
        return pl.DataFrame(schema=schema)
    cols = dict(zip(PARTIAL_FIELDS, zip(*events, strict=True), strict=True))
    ts = np.fromiter(cols["timestamp"], dtype=np.int64, count=n)
    # collector time: the same interpolation, in the same float operations, as the rows
    x = np.fromiter(draws, dtype=np.float64, count=n) * 1024.0
    i = x.astype(np.int64)
    t = np.asarray(lat, dtype=np.float64)
    sent = ts + (t[i] + (x - i) * (t[i + 1] - t[i])).astype(np.int64)
    counts = np.fromiter((s[-1] for s in sessions), dtype=np.int64, count=len(sessions))
    ends = np.cumsum(counts)
    owner = np.repeat(np.arange(len(sessions), dtype=np.uint32), counts)
    k = np.arange(n, dtype=np.int64) - np.repeat(ends - counts, counts)
    nxt = np.empty_like(ts)
    nxt[:-1] = ts[1:]
    nxt[ends - 1] = ts[ends - 1]  # the last event of a session: duration 0
    per_session = pl.DataFrame(
        [pl.Series(name, values, dtype=pl.String)
         for name, values in zip(SESSION_FIELDS, zip(*sessions, strict=True), strict=False)]
    )[owner]
    sid = per_session.get_column("session_id")
    derived = {
        "schema_version": pl.repeat(SCHEMA_VERSION, n, dtype=pl.Int32, eager=True),
        "event_id": pl.select(pl.concat_str([pl.lit(sid), pl.lit("-"),
                                             pl.lit(pl.Series(k)).cast(pl.String)]))
        .to_series(),
        "sent_at": pl.Series(sent),
        "page_duration_ms": pl.Series(nxt - ts),
    }
    out = []
    for name, dtype in schema.items():
        if name in derived:
            s = derived[name]
        elif name in cols:
            s = pl.Series(cols[name], dtype=dtype) if name != "timestamp" else pl.Series(ts)
        else:
            s = per_session.get_column(name)
        out.append(s.alias(name).cast(dtype))
    return pl.DataFrame(out)


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


def _worker(config: SimConfig, day_start_ms: int, path: str,
            schema_version: str = DEFAULT_MODE) -> int:
    q = _QUEUE
    return write_day(config, day_start_ms, Path(path), progress=q.put if q else None,
                     schema_version=schema_version)


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
    schema_version: str = DEFAULT_MODE,
) -> GenerateResult:
    """Write `days` CSV files (one per UTC date from `start_ms`'s date) into `out_dir`, in
    the versions `schema_version` picks (1, 2 or mix)."""
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
                total += write_day(config, day_ms, path, progress=bar.update,
                                   schema_version=schema_version)
        else:
            ctx = mp.get_context("spawn")  # polars is not fork-safe once its pool runs
            q = ctx.Queue()
            with ProcessPoolExecutor(min(workers, days), mp_context=ctx,
                                     initializer=_init_worker, initargs=(q,)) as pool:
                futures = [pool.submit(_worker, config, d, str(p), schema_version)
                           for d, p in jobs]
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
