"""CSV days in other schema versions (`clickstream generate --schema-version 2|mix`).

The simulator makes chunks of internal (version 1) events; `as_sent` turns a chunk into
the same events as the clients of `--schema-version` send them, column-wise with Polars:
each row's version (`shared.events.version_for`: all 2, or by event_id with `mix`), every
version's columns (`CSV_HEADER_WIRE`), each filled for the rows of a version that has it
(renamed, amounts times the demo rate of the row's currency, new fields from their
`Default`) and empty for the others. `testing.csv_reader` and the batch job read such a day
back into exactly the internal events (a unit test checks each row against
`shared.events.from_internal`).
"""

from __future__ import annotations

from shared.events import (
    CURRENCY,
    RATES,
    SCHEMA_VERSION,
    SCHEMAS,
    WIRE_FIELDS,
    polars_schema,
    version_for,
)

DEFAULT_MODE = str(SCHEMA_VERSION)


def as_sent(df, mode: str):
    """A frame of internal events -> the same events as sent with `--schema-version
    mode`, with every version's columns; unchanged for version 1 alone."""
    import polars as pl

    if mode == DEFAULT_MODE:
        return df
    if mode == "mix":
        versions = pl.Series([version_for(mode, e) for e in df.get_column("event_id")],
                             dtype=pl.Int32)
    else:
        versions = pl.repeat(int(mode), df.height, dtype=pl.Int32, eager=True)
    df = df.with_columns(versions.alias("schema_version"))
    wire = polars_schema(WIRE_FIELDS)
    added = {}
    for schema in SCHEMAS.values():
        for name, default in schema.defaults.items():
            if name in added:
                continue
            keys = df.select(default.reads).unique()
            values = pl.Series(name, [default.fn(*k) for k in keys.iter_rows()],
                               dtype=wire[name])
            df = df.join(keys.with_columns(values.alias(f"_{name}")), on=list(default.reads),
                         how="left", maintain_order="left", nulls_equal=True)
            added[name] = pl.col(f"_{name}")
    rate = added[CURRENCY].replace_strict(RATES, return_dtype=pl.Int64)
    version = pl.col("schema_version")
    columns = []
    for f in WIRE_FIELDS:
        expr = None
        for v, schema in SCHEMAS.items():
            if f.name not in schema.by_name:
                continue
            internal = {own: name for name, own in schema.source.items()}.get(f.name)
            if f.name == "schema_version":
                value = version
            elif internal is None:
                value = added[f.name]
            elif internal in schema.priced:
                value = pl.col(internal) * rate
            else:
                value = pl.col(internal)
            expr = (pl.when(version == v) if expr is None else expr.when(version == v)
                    ).then(value)
        columns.append(expr.otherwise(None).cast(wire[f.name]).alias(f.name))
    return df.select(columns)
