"""The typed reader for the CSV days written by `clickstream generate`.

Loads with the shared Polars schema and fails loudly -- naming the file and the problem --
on a wrong header, a value of the wrong type, a malformed timestamp, an unknown
schema_version or any broken rule of a row's version (`shared.events.validate`'s). Nothing is
silently turned into a null. Days of several versions (the header of every version's
columns) come back normalised to the internal shape, as the job reads them.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shared.errors import ClickstreamError
from shared.events import (
    CSV_HEADER,
    CSV_HEADER_WIRE,
    CSV_TIMESTAMP_FORMAT,
    CURRENCY,
    RATES,
    SCHEMAS,
    WIRE_FIELDS,
    Kind,
    foreign_reason,
    polars_schema,
    whole_cents_reason,
)
from testing.truth import normalise, with_wire_columns


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
    schema of the internal shape (`polars_schema()`), whatever versions the rows are in."""
    frames = [_read_one(p) for p in csv_files(Path(path))]
    return pl.concat(frames) if len(frames) > 1 else frames[0]


def _read_one(path: Path) -> pl.DataFrame:
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split(",")
    if tuple(header) not in (CSV_HEADER, CSV_HEADER_WIRE):
        raise ClickstreamError(f"{path}: header does not match the event schema: {header[:5]}...")
    schema = polars_schema(WIRE_FIELDS)
    read_as = {n: (pl.String if f.kind is Kind.TIMESTAMP else schema[n])
               for f in WIRE_FIELDS if (n := f.name) in header}
    try:
        df = pl.read_csv(path, schema=read_as, has_header=True)
        df = df.with_columns(
            pl.col(f.name).str.strptime(schema[f.name], CSV_TIMESTAMP_FORMAT, strict=True)
            for f in WIRE_FIELDS if f.kind is Kind.TIMESTAMP and f.name in header
        )
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError,
            pl.exceptions.SchemaError) as e:
        first = str(e).strip().splitlines()[0]
        raise ClickstreamError(f"{path}: bad row: {first}") from None
    df = with_wire_columns(df)
    if df["schema_version"].null_count():
        raise ClickstreamError(f"{path}: empty required values in schema_version")
    unknown = df.filter(~pl.col("schema_version").is_in(list(SCHEMAS)))
    if unknown.height:
        raise ClickstreamError(f"{path}: unknown schema_version {unknown['schema_version'][0]}")
    for version, schema in SCHEMAS.items():
        rows = df.filter(pl.col("schema_version") == version)
        if rows.height:
            _check(path, rows, schema)
    return normalise(df)


def _check(path: Path, df: pl.DataFrame, schema) -> None:
    """The rules of `schema` (one version) on its rows."""
    nulls = df.select(pl.col(list(schema.required)).null_count()).row(0)
    missing = [n for n, c in zip(schema.required, nulls, strict=True) if c]
    if missing:
        raise ClickstreamError(f"{path}: empty required values in {', '.join(missing)}")
    for name, values in schema.allowed.items():
        bad = df.filter(~pl.col(name).is_in(values))
        if bad.height:
            raise ClickstreamError(f"{path}: unknown {name} {bad[name][0]!r}")
    rate = pl.col(CURRENCY).replace_strict(RATES, default=None, return_dtype=pl.Int64)
    for name in schema.priced_names:
        bad = df.filter(pl.col(name) % rate != 0)
        if bad.height:
            raise ClickstreamError(f"{path}: {whole_cents_reason(name)}, e.g. "
                                   f"{bad[name][0]} {bad[CURRENCY][0]}")
    for name in (n for n in df.columns if n not in schema.by_name):
        if df[name].null_count() < df.height:
            raise ClickstreamError(f"{path}: {foreign_reason(name, schema.version)}")
