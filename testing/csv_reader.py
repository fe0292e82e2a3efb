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
    ALLOWED,
    CSV_HEADER,
    CSV_TIMESTAMP_FORMAT,
    FIELDS,
    REQUIRED,
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
    nulls = df.select(pl.col(list(REQUIRED)).null_count()).row(0)
    missing = [n for n, c in zip(REQUIRED, nulls, strict=True) if c]
    if missing:
        raise ClickstreamError(f"{path}: empty required values in {', '.join(missing)}")
    for name, values in ALLOWED.items():
        bad = df.filter(~pl.col(name).is_in(values))
        if bad.height:
            raise ClickstreamError(f"{path}: unknown {name} {bad[name][0]!r}")
    return df
