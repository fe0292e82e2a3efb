"""Simulated days -> one CSV file per UTC date, written with Polars.

Each file holds exactly the events whose `timestamp` falls on its date (sessions that run
past midnight continue in the next file; late and duplicate noise stays with the event's
date), in event-time order, with the header from the shared schema. Days are independent
given (seed, day), so they are written by a pool of worker processes and the result is
identical whatever the worker count. Memory is bounded by the chunk size, not the day size.
Chunks are built column by column (see `day_frames`), late and duplicate noise included;
bots and scenarios take the row path.

    clickstream generate --days 3 --out data/csv --events-per-day 1000000 --seed 7
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import queue as queue_mod
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

from services.batch_generator.versions import DEFAULT_MODE, as_sent
from services.simulator.lines import IN_MINUTE, minute_text
from services.simulator.model import (
    BLOCK_MS,
    MAX_SESSION_MS,
    PARTIAL_FIELDS,
    SESSION_FIELDS,
    SimConfig,
    Simulator,
)
from services.simulator.rows import PARTIAL_TS
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
            df.with_columns(_timestamp_text(df.get_column(name)) for name, dtype
                            in df.schema.items() if isinstance(dtype, pl.Datetime)
                            ).write_csv(f, include_header=first)
            first = False
            n += df.height
            if progress is not None:
                progress(df.height)
        if first:  # an empty day still gets its header
            as_sent(rows_to_frame([]), schema_version).write_csv(f, include_header=True)
    os.replace(tmp, path)
    return n


_IN_MINUTE = None  # IN_MINUTE as a Polars Series, made on first use
_MINUTES_SPANNED = 7 * 1440  # a chunk's timestamps within a week: a table of its minutes


def _timestamp_text(column):
    """A UTC datetime column (ms) as its CSV text (`CSV_TIMESTAMP_FORMAT`), made as the
    JSON lines make it: each minute's 'YYYY-MM-DDTHH:MM:' from a table of the chunk's
    minutes, its 'SS.mmmZ' from the 60,000 of a minute. `write_csv` formats each value
    with chrono: 0.3 us per timestamp, three times this."""
    import polars as pl

    global _IN_MINUTE
    ms = column.dt.epoch("ms")
    minute = ms // 60_000
    first, last = minute.min(), minute.max()
    if first is None or last - first > _MINUTES_SPANNED:  # empty, or hours-late sends
        return column.dt.replace_time_zone(None).dt.strftime(CSV_TIMESTAMP_FORMAT)
    if _IN_MINUTE is None:
        _IN_MINUTE = pl.Series(IN_MINUTE)
    minutes = pl.Series([minute_text(m) for m in range(first, last + 1)])
    return (minutes.gather(minute - first) + _IN_MINUTE.gather(ms - minute * 60_000)
            ).alias(column.name)


def day_frames(sim: Simulator, start_ms: int, end_ms: int, chunk: int = CHUNK):
    """DataFrames (shared schema) of the events with `start_ms <= timestamp < end_ms`, in
    event-time order, about `chunk` rows each: the same events, in the same order, as
    `rows_to_frame` over `Simulator.rows_by_event_time`.

    The frames are built column-wise (`Simulator.block_columns`): per-session constants
    once per session, expanded by a gather; ids, collector times and page durations
    derived in bulk; late sends and duplicates (`Simulator.block_noise`) applied to those
    columns. With bots or scenarios on (whole rows of their own), the row path is used.
    """
    if sim.config.noise.bot_rate or sim.config.scenarios:
        for rows in sim.rows_by_event_time(start_ms, end_ms, chunk):
            yield rows_to_frame(rows)
        return
    import numpy as np

    noise = sim.config.noise
    noisy = bool(noise.late_rate or noise.duplicate_rate or noise.malformed_rate)
    block = (start_ms - MAX_SESSION_MS) // BLOCK_MS - 1
    last_block = (end_ms - 1) // BLOCK_MS
    pending = None  # generated, sorted, not yet final (timestamp >= the next block's start)
    events: list[tuple] = []
    draws: list[float] = []
    sessions: list[tuple] = []
    delays: dict[int, int] = {}
    twice: list[int] = []
    while block <= last_block:
        first = len(events)
        sim.block_columns(block, events, draws, sessions)
        if noisy:  # malformed payloads are not CSV rows, but draw all the same
            late, dup, _ = sim.block_noise(block, len(events) - first)
            delays.update((first + i, d) for i, d in late.items())
            twice.extend(first + i for i in sorted(dup))
        block += 1
        if len(events) < chunk and block <= last_block:
            continue
        rows = _Rows.generated(events, draws, sessions, sim.latency_table, delays, twice)
        events, draws, sessions, delays, twice = [], [], [], {}, []
        if pending is not None:
            rows = pending.then(rows)
        # stable: equal timestamps keep generation order, like the row path's list sort
        order = np.argsort(rows.ts, kind="stable")
        # later sessions start (and so have events) at or after the next block's start
        cutoff = min(block * BLOCK_MS, end_ms)
        lo, hi = np.searchsorted(rows.ts[order], [start_ms, cutoff], side="left")
        pending = rows.take(order[hi:]) if block <= last_block else None
        if hi > lo:
            yield rows.frame(order[lo:hi])


@dataclass
class _Rows:
    """Event rows not yet written, held by reference: per row, its partial event (an index
    into `events`) and its session (an index into `sessions`, `block_columns` tuples),
    with the values derived per row as arrays. Sorting and cutting move indexes only; the
    strings are gathered once, in the final order, by `frame`."""

    events: list  # partial tuples (PARTIAL_FIELDS)
    sessions: list  # SESSION_FIELDS tuples (+ their event count)
    event: object  # numpy int64 arrays, one value per row from here on
    session: object
    ts: object
    sent: object
    duration: object
    index: object  # the event's position in its session (the event_id suffix)

    @classmethod
    def generated(cls, events, draws, sessions, lat, delays, twice) -> _Rows:
        """The rows of `block_columns` output, in generation order, with late sends
        (`delays`: row -> extra ms) and duplicates (`twice`: rows sent twice, in order)."""
        import numpy as np

        n = len(events)
        ts = np.fromiter(map(itemgetter(PARTIAL_TS), events), dtype=np.int64, count=n)
        # collector time: the same interpolation, in the same float operations, as the rows
        x = np.fromiter(draws, dtype=np.float64, count=n) * 1024.0
        i = x.astype(np.int64)
        t = np.asarray(lat, dtype=np.float64)
        sent = ts + (t[i] + (x - i) * (t[i + 1] - t[i])).astype(np.int64)
        if delays:  # a late send: the collector gets it this much after the event
            late = np.fromiter(delays, dtype=np.int64, count=len(delays))
            sent[late] = ts[late] + np.fromiter(delays.values(), dtype=np.int64,
                                                count=len(delays))
        counts = np.fromiter(map(itemgetter(-1), sessions), dtype=np.int64,
                             count=len(sessions))
        ends = np.cumsum(counts)
        session = np.repeat(np.arange(len(sessions), dtype=np.int64), counts)
        index = np.arange(n, dtype=np.int64) - np.repeat(ends - counts, counts)
        nxt = np.empty_like(ts)
        nxt[:-1] = ts[1:]
        nxt[ends - 1] = ts[ends - 1]  # the last event of a session: duration 0
        event = np.arange(n, dtype=np.int64)
        if twice:  # a duplicate send right after its row: the same row again
            event = np.insert(event, np.asarray(twice, dtype=np.int64) + 1, twice)
        return cls(events, sessions, event, session[event], ts[event], sent[event],
                   (nxt - ts)[event], index[event])

    def then(self, later: _Rows) -> _Rows:
        """These rows followed by `later`'s (concatenated in generation order)."""
        import numpy as np

        return _Rows(
            self.events + later.events, self.sessions + later.sessions,
            np.concatenate([self.event, later.event + len(self.events)]),
            np.concatenate([self.session, later.session + len(self.sessions)]),
            *(np.concatenate([a, b]) for a, b in zip(self._values(), later._values(),
                                                     strict=True)))

    def take(self, rows) -> _Rows:
        """The rows at positions `rows`, in that order, keeping only what they refer to."""
        import numpy as np

        n = len(rows)
        return _Rows(list(map(self.events.__getitem__, self.event[rows].tolist())),
                     list(map(self.sessions.__getitem__, self.session[rows].tolist())),
                     np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64),
                     *(a[rows] for a in self._values()))

    def _values(self) -> tuple:
        return self.ts, self.sent, self.duration, self.index

    def frame(self, rows):
        """The DataFrame (CSV_HEADER order, timestamps as UTC datetimes) of the rows at
        positions `rows`, in that order."""
        import polars as pl

        schema = _frame_schema()
        # columns in the order the tuples were made (memory order: twice as fast as in
        # time order), then gathered; map(itemgetter) is about twice as fast as zip(*)
        per_event = pl.DataFrame(
            [pl.Series(name, list(map(itemgetter(i), self.events)), dtype=schema[name])
             for i, name in enumerate(PARTIAL_FIELDS) if name != "timestamp"]
        )[self.event[rows]]
        per_session = pl.DataFrame(
            [pl.Series(name, list(map(itemgetter(i), self.sessions)), dtype=pl.String)
             for i, name in enumerate(SESSION_FIELDS)]
        )[self.session[rows]]
        index = pl.Series(self.index[rows]).cast(pl.String)
        derived = {
            "schema_version": pl.repeat(SCHEMA_VERSION, len(rows), dtype=pl.Int32, eager=True),
            "event_id": per_session.get_column("session_id") + "-" + index,
            "timestamp": pl.Series(self.ts[rows]),
            "sent_at": pl.Series(self.sent[rows]),
            "page_duration_ms": pl.Series(self.duration[rows]),
        }
        out = []
        for name, dtype in schema.items():
            if name in derived:
                s = derived[name]
            elif name in per_event.columns:
                s = per_event.get_column(name)
            else:
                s = per_session.get_column(name)
            out.append(s.alias(name).cast(dtype))
        return pl.DataFrame(out).with_columns(
            pl.col(n).cast(pl.Datetime("ms", "UTC")) for n in _TIMESTAMPS)


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
# Polars' allocator (jemalloc) gives the pages of freed frames back to the OS, and every
# chunk then faults them in again (a day in one worker: 130k page faults, 75k kept). Kept,
# they are reused: a 10-day run 5.8-6.7 s in the kernel instead of 7.6-7.9, peak RSS +20 MiB
# a worker. A value set by the user wins.
WORKER_ENV = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}


@contextmanager
def _environment(values: dict[str, str]):
    """`values` in the environment (of the processes started meanwhile), unless set."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


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
                with _environment(WORKER_ENV):  # the workers start with the submits
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
