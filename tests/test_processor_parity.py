"""Parity: the Spark definitions equal the independent Polars truth on a few thousand
generated events (duplicates, late deliveries, midnight-crossing sessions)."""

import pytest
from test_truth_handmade import normalise

from services.processor.batch import batch_tables
from shared import tables as tb
from testing.spark import generate, local_session, polars_events, spark_events
from testing.truth import truth


@pytest.fixture(scope="module")
def data():
    events = generate(400, seed=11)
    assert 2000 <= len(events) <= 8000
    assert len({e["event_id"] for e in events}) < len(events)  # duplicates present
    return events


def test_processor_parity_spark_equals_polars_truth(data):
    spark = local_session()
    frames = batch_tables(spark_events(spark, data))
    expected = truth(polars_events(data))
    for t in tb.ANALYTICS:
        got = normalise([tuple(r) for r in frames[t.name].collect()])
        want = normalise(expected[t.name].rows())
        assert len(got) == len(want), t.name
        assert got == want, t.name
        # a row only where the table's event happened (README: "No all-zero rows")
        counts = [t.column_names.index(m) for m in t.metrics
                  if t.cql_type(m) in ("bigint", "int")]
        assert [r for r in got if all(r[i] == 0 for i in counts)] == [], t.name
