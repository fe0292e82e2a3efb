"""A small micro-batch's table rows, projected in Python from its collected reduced rows.

Why: through the Spark Cassandra connector, writing a micro-batch is one Spark job per
table it touches (up to 13, plus the dead letters). For a micro-batch of a few updated rows
those jobs were most of its time (README, "Benchmarks"): the stream runner instead collects
the cached reduced rows (one scan job) and writes them from the driver with prepared
statements (`CassandraSink.write_rows`).

The projection is the same declaration as `aggregates.table_rows` -- the aggregate's keys,
the Output's metrics, `present` and `finish` (its Python twin `finish_py`) --
rendered for Python dicts instead of Spark Columns. A unit test
(tests/test_processor_local_rows.py) pins that both give the same rows for every table.

Timestamps travel as integer microseconds (Spark's `unix_micros`, exact and free of the
Python process's time zone) and become aware UTC datetimes at the end.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator

from services.processor import aggregates as ag
from shared import tables as tb

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: the reduced rows' timestamp columns, collected as microseconds
TS_COLUMNS = ("wstart", "wend", *ag.slot_names(ag.MIN_TS), *ag.slot_names(ag.MAX_TS))
_CAST = {"bigint": int, "int": int, "boolean": bool, "text": str,
         "timestamp": lambda us: EPOCH + dt.timedelta(microseconds=us),
         "date": lambda d: d}


def collect_reduced(batch, limit: int | None = None) -> list[dict]:
    """The reduced rows of a (cached) micro-batch as dicts, timestamps as microseconds;
    at most `limit` of them."""
    from pyspark.sql import functions as F

    cols = [F.unix_micros(c).alias(c) if c in TS_COLUMNS else F.col(c) for c in ag.TAG_FIELDS]
    rows = batch.select(*cols)
    return [r.asDict() for r in (rows if limit is None else rows.limit(limit)).collect()]


def day(us: int) -> dt.date:
    return (EPOCH + dt.timedelta(microseconds=us)).date()


def _typed(table: tb.Table, row: dict) -> dict:
    out = {}
    for c in table.column_names:
        v = row[c]
        out[c] = None if v is None else _CAST[table.cql_type(c)](v)
    return out


def table_rows(reduced: list[dict], name: str) -> list[dict]:
    """The rows of table `name` (dicts with exactly its columns, typed for the CQL
    driver) from a micro-batch's reduced rows: `aggregates.table_rows` in Python."""
    a, out = ag.BY_TABLE[name]
    table = out.table
    slot_of = a.slot_of()
    rows = []
    for r in reduced:
        if r["agg"] != a.name:
            continue
        row = {tb.DAY: day(r["wstart"])}
        if tb.WINDOW_START in table.column_names:
            row[tb.WINDOW_START] = r["wstart"]
        keys = [r[f"k{i}"] for i in range(len(a.keys))]
        row.update(zip((k for k, _ in a.keys), keys, strict=True))
        for m in out.metrics:
            metric, _, column = m.partition(":")
            row[column or metric] = r[slot_of[metric]]
        # Spark's greatest() skips nulls: a table holds no all-zero rows
        if out.present and not max((row[p] for p in out.present if row[p] is not None),
                                   default=0) > 0:
            continue
        if out.finish_py:
            row.update(out.finish_py(row))
        rows.append(_typed(table, row))
    return rows


def _micros(v: dt.datetime) -> int:
    """An aware or naive-UTC datetime (the CQL driver reads naive UTC) as epoch microseconds."""
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.UTC)
    return (v - EPOCH) // dt.timedelta(microseconds=1)


_FOLD = {ag.SUM: sum, ag.MIN_TS: min, ag.MAX_TS: max,
         ag.BITS: lambda values: functools.reduce(operator.or_, values, 0)}


def fold_sessions(partials: list[dict]) -> list[dict]:
    """`sessions` rows (typed for the CQL driver) from `session_partials` rows (dicts of its
    columns, timestamps as datetimes): `aggregates.fold_sessions` in Python."""
    a, out, attributes = ag._session_folds()
    kinds = {m.name: m.kind for m in a.metrics}
    by_session: dict[tuple, list[dict]] = {}
    for r in partials:
        by_session.setdefault((r[tb.DAY], r["session_id"]), []).append(r)
    rows = []
    for (day_, session_id), pieces in by_session.items():
        row = {tb.DAY: day_, "session_id": session_id}
        for m in out.metrics:
            values = [p[m] for p in pieces]
            if kinds[m] in (ag.MIN_TS, ag.MAX_TS):
                values = [_micros(v) for v in values]
            row[m] = _FOLD[kinds[m]](values)
        for k in attributes:
            row[k] = max((p[k] for p in pieces if p[k] != tb.NONE_KEY), default=None)
        row.update(ag._finish_sessions_py(row))
        rows.append(_typed(tb.SESSIONS, row))
    return rows


HOUR_US = ag.HOUR * 1_000_000


def session_cell(row: dict) -> tuple[tuple, tuple[int, ...]]:
    """A `sessions` row's second-level cell: its key (`aggregates.CELL_KEYS`, the hour as
    epoch microseconds) and its `CELL_SUMS`: `aggregates.session_cells` in Python."""
    us = _micros(row["start_ts"])
    key = (row[tb.DAY], us - us % HOUR_US,
           *(tb.NONE_KEY if row[k] is None else row[k] for k in ag.CELL_KEYS[2:]))
    return key, (1, *(int(row[s]) for s in ag.CELL_SUMS[1:-1]), row["revenue_cents"] or 0)


def dead_letter_rows(reduced: list[dict]) -> list[dict]:
    """The dead_letter rows: `stream.dead_letter_rows` in Python."""
    rows = []
    for r in reduced:
        if r["agg"] != "dead_letter":
            continue
        rows.append(_typed(tb.DEAD_LETTER, {
            tb.DAY: day(r["wstart"]), "received_at": r["wstart"],
            "source": None if r["k4"] is None else "kafka:" + r["k4"],
            "kafka_partition": r["k0"], "kafka_offset": r["k1"], "reason": r["k3"],
            "payload": r["k2"]}))
    return rows
