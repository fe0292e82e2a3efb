"""The typed reader for the CSV days written by `clickstream generate`.

Loads with the shared Polars schema and fails loudly -- naming the file and the problem --
on a wrong header, a value of the wrong type, a malformed timestamp or a missing required
value. Nothing is silently turned into a null.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shared.errors import ClickstreamError
from shared.events import (
    ACTIONS,
    CSV_HEADER,
    CSV_TIMESTAMP_FORMAT,
    FIELDS,
    PAGES,
    Kind,
    polars_schema,
)


def csv_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("events-*.csv"))
        if not files:
            raise ClickstreamError(f"no events-*.csv files in {path}")
        return files
    if not path.exists():
        raise ClickstreamError(f"{path} does not exist")
    return [path]


def read_events(path: Path | str) -> pl.DataFrame:
    """One CSV file, or every `events-*.csv` in a folder, as a DataFrame with the shared
    schema (`polars_schema()`)."""
    frames = [_read_one(p) for p in csv_files(Path(path))]
    return pl.concat(frames) if len(frames) > 1 else frames[0]


def _read_one(path: Path) -> pl.DataFrame:
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split(",")
    if tuple(header) != CSV_HEADER:
        raise ClickstreamError(f"{path}: header does not match the event schema: {header[:5]}...")
    schema = polars_schema()
    read_as = {n: (pl.String if f.kind is Kind.TIMESTAMP else schema[n])
               for n, f in zip(CSV_HEADER, FIELDS, strict=True)}
    try:
        df = pl.read_csv(path, schema=read_as, has_header=True)
        df = df.with_columns(
            pl.col(f.name).str.strptime(schema[f.name], CSV_TIMESTAMP_FORMAT, strict=True)
            for f in FIELDS if f.kind is Kind.TIMESTAMP
        )
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError,
            pl.exceptions.SchemaError) as e:
        first = str(e).strip().splitlines()[0]
        raise ClickstreamError(f"{path}: bad row: {first}") from None
    required = [f.name for f in FIELDS if not f.nullable]
    nulls = df.select(pl.col(required).null_count()).row(0)
    missing = [n for n, c in zip(required, nulls, strict=True) if c]
    if missing:
        raise ClickstreamError(f"{path}: empty required values in {', '.join(missing)}")
    bad = df.filter(~pl.col("page").is_in(PAGES) | ~pl.col("action").is_in(ACTIONS))
    if bad.height:
        r = bad.row(0, named=True)
        raise ClickstreamError(f"{path}: unknown page/action {r['page']!r}/{r['action']!r}")
    return df
