"""Modes and time ranges: which tables a refresh reads and which windows it shows.

A range is [start, end) with end = now. A window *overlaps* the range when
window_start > start - window_seconds, so a 15-minute range still shows the current hour of
an hourly table. "all" starts at the earliest UTC day with data (the reader probes for it),
never more than `ALL_MAX_DAYS` days back.
"""

from __future__ import annotations

import datetime as dt

from shared import tables as tb
from shared.tables import Table

MODES = ("stream", "batch")
#: label -> length of the range (None: "all")
RANGES: dict[str, dt.timedelta | None] = {
    "15 min": dt.timedelta(minutes=15),
    "1 hour": dt.timedelta(hours=1),
    "24 hours": dt.timedelta(hours=24),
    "7 days": dt.timedelta(days=7),
    "all": None,
}
DEFAULT_RANGE = "24 hours"
ALL_MAX_DAYS = 366  # "all" never looks back further than this


def table_for(base: str, mode: str) -> Table:
    """The stream table `base` or its `_batch` twin."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    table = tb.table(base)
    return table if mode == "stream" else table.batch()


def utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def range_bounds(label: str, now: dt.datetime,
                 earliest_day: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a range label; "all" starts at `earliest_day` (today if None)."""
    if label not in RANGES:
        raise ValueError(f"time range must be one of {list(RANGES)}, got {label!r}")
    now = utc(now)
    span = RANGES[label]
    if span is not None:
        return now - span, now
    floor = (now - dt.timedelta(days=ALL_MAX_DAYS - 1)).date()
    day = max(earliest_day or now.date(), floor)
    return dt.datetime.combine(day, dt.time(), dt.UTC), now


def query_start(table: Table, start: dt.datetime) -> dt.datetime:
    """The earliest window_start whose window overlaps [start, ...)."""
    if not table.window_seconds or table.time_column is None:
        return start
    return start - dt.timedelta(seconds=table.window_seconds) + dt.timedelta(milliseconds=1)


def time_bucket(start: dt.datetime, end: dt.datetime) -> str:
    """A pandas frequency giving at most ~300 points over [start, end) for time series."""
    minutes = (end - start).total_seconds() / 60
    for freq, size in (("1min", 1), ("5min", 5), ("15min", 15), ("1h", 60), ("6h", 360)):
        if minutes / size <= 300:
            return freq
    return "1D"
