"""Every schema version into the internal shape, in Spark.

Renders `shared.events.SCHEMAS` as Column expressions, for both runners: the stream's
`parse` on the JSON struct of every version's fields (`WIRE_FIELDS`), the batch job on the
columns of a CSV day. Each version's rules give a row its dead-letter `reason`
(`reason`), and each version's fields map back onto version 1, the shape the aggregates
read (`internal_columns`): renamed fields by their name in the row's version, amounts in
minor units of `currency` divided by the demo rate (`RATES`; exact, since an amount that
is not a multiple of its rate is a dead letter), the version's own fields dropped. So the
aggregates, the dedup and the batch job's copy check never see a version.

`prefix` names where the fields are: "w." for a struct column `w`, "" for top-level columns.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shared.events import (
    CURRENCY,
    FIELD_NAMES,
    RATES,
    SCHEMA_VERSION,
    SCHEMAS,
    WIRE_FIELDS,
    WIRE_NAMES,
    Field,
    foreign_reason,
    spark_schema,
    whole_cents_reason,
)

NullReason = Callable[[Field], str]


def _minor_to(prefix: str, name: str, op: str) -> Column:
    """`name op rate` with the rate of the row's currency (`div` or `%`), integer
    arithmetic (exact for any long); null for a currency without a rate."""
    cases = " ".join(f"WHEN '{c}' THEN {prefix}{name} {op} {r}" for c, r in RATES.items())
    return F.expr(f"CASE {prefix}{CURRENCY} {cases} END")


def reason(prefix: str, null_reason: NullReason) -> Column:
    """The first broken rule of the row's version as a one-line reason, or null: an unknown
    schema_version; a required field null; a value outside its closed vocabulary; an
    amount that is not a whole number of US cents; a field of another version set."""
    version = F.col(f"{prefix}schema_version")
    envelope = [
        (version.isNull(), null_reason(WIRE_FIELDS[0])),
        (~version.isin(*SCHEMAS), "unknown schema_version"),
    ]
    per_version = None
    for v, schema in SCHEMAS.items():
        checks = [(F.col(prefix + f.name).isNull(), null_reason(f))
                  for f in schema.fields if f.name in schema.required]
        checks += [(~F.col(prefix + name).isin(*values), f"unknown {name}")
                    for name, values in schema.allowed.items()]
        checks += [(_minor_to(prefix, name, "%") != 0, whole_cents_reason(name))
                   for name in schema.priced_names]
        checks += [(F.col(prefix + name).isNotNull(), foreign_reason(name, v))
                   for name in WIRE_NAMES if name not in schema.by_name]
        first = F.coalesce(*(F.when(cond, F.lit(msg)) for cond, msg in checks))
        per_version = (F.when(version == v, first) if per_version is None
                       else per_version.when(version == v, first))
    return F.coalesce(*(F.when(cond, F.lit(msg)) for cond, msg in envelope), per_version)


def internal_columns(prefix: str) -> list[Column]:
    """The internal shape's columns (FIELD_NAMES), each from the row's version."""
    version = F.col(f"{prefix}schema_version")
    out = []
    for name in FIELD_NAMES:
        if name == "schema_version":
            out.append(F.lit(SCHEMA_VERSION).alias(name))
            continue
        expr = None
        for v, schema in SCHEMAS.items():
            own = schema.source[name]
            if own == name and name not in schema.priced:
                continue  # the same column in this version
            value = (_minor_to(prefix, own, "div") if name in schema.priced
                     else F.col(prefix + own))
            expr = F.when(version == v, value) if expr is None else expr.when(version == v, value)
        column = F.col(prefix + name)
        out.append((column if expr is None else expr.otherwise(column)).alias(name))
    return out


def with_wire_columns(df: DataFrame) -> DataFrame:
    """`df` with every version's columns (WIRE_FIELDS order), those it lacks as nulls."""
    types = {f.name: f.dataType for f in spark_schema(WIRE_FIELDS).fields}
    return df.select(*(F.col(n) if n in df.columns else F.lit(None).cast(types[n]).alias(n)
                       for n in WIRE_NAMES))


def internal(df: DataFrame) -> DataFrame:
    """Valid events of any versions (top-level columns of one version, or of all) -> the
    internal shape."""
    return with_wire_columns(df).select(*internal_columns(""))
