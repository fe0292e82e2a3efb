"""Schema versions through the Spark job (local Spark, no servers): a stream of v1 and v2
events, and CSV days of both, give exactly the tables of the same events all in v1 (the
Polars truth); an unknown version, or a v2 amount that is not whole cents, is a dead letter
with its reason and is never counted."""

from __future__ import annotations

import json

import pytest
from test_processor_stream import run_files
from test_truth_handmade import normalise

from services.processor.batch import (
    batch_tables,
    invalid_rows_marked,
    read_csv_days,
    run_batch,
    validate,
)
from shared import tables as tb
from shared.errors import ClickstreamError
from shared.events import from_internal, version_for
from shared.settings import get_settings
from testing.spark import MemorySink, generate, local_session, polars_events, write_record_files
from testing.truth import truth

COUNTRIES = ("US", "IN", "BR", "DE")  # USD, INR, BRL, USD


def with_countries(events: list[dict]) -> list[dict]:
    """The test generator's events (all from DE) from several countries, so that v2 sends
    amounts in several currencies; a visitor keeps one country."""
    return [{**e, "geo_country": COUNTRIES[sum(map(ord, e["user_id"])) % len(COUNTRIES)]}
            for e in events]


def mixed(events: list[dict]) -> list[dict]:
    return [from_internal(e, version_for("mix", e["event_id"])) for e in events]


def bad_payloads(events: list[dict]) -> list[str]:
    """A v3 message (this build reads 1 and 2), a v2 amount of 582 paise (7.01 cents) and
    a v1 event carrying a v2 field: each a new event_id, so only a bug could count it."""
    priced = next(e for e in events if e["price_cents"] and e["geo_country"] == "IN")
    v3 = {**from_internal(priced, 2), "schema_version": 3, "event_id": "new-v3"}
    cents = {**from_internal(priced, 2), "price_minor": 582, "event_id": "new-cents"}
    foreign = {**priced, "currency": "USD", "event_id": "new-foreign"}
    return [json.dumps({k: v if k not in ("timestamp", "sent_at") else _iso(v)
                        for k, v in e.items()}) for e in (v3, cents, foreign)]


def _iso(ms: int) -> str:
    from shared.events import format_ts

    return format_ts(ms)


REASONS = ["unknown schema_version",
           "price_minor is not a whole number of US cents at its currency's rate",
           "currency is not a field of schema_version 1"]


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("versions")
    events = with_countries(generate(120, seed=17, span_hours=2.0, late_ms=60_000))
    sent = mixed(events)
    assert {e["schema_version"] for e in sent} == {1, 2}
    assert {e["currency"] for e in sent if e["schema_version"] == 2} == {"USD", "INR", "BRL"}
    n = len(sent)
    batches = [sent[: n // 2] + bad_payloads(events), sent[n // 2:]]
    write_record_files(tmp / "in", batches)
    sink = MemorySink()
    router, _ = run_files(tmp / "in", tmp / "ckpt", sink)
    return events, sink, router


def test_processor_mixed_stream_counts_v1_and_v2_exactly(streamed):
    events, sink, _ = streamed
    expected = truth(polars_events(events))
    for t in tb.ANALYTICS:
        assert normalise(sink.rows(t.name)) == normalise(expected[t.name].rows()), t.name
    revenue = sum(r[4] for r in sink.rows("revenue_hourly"))
    assert revenue == sum(e["revenue_cents"] or 0 for e in {e["event_id"]: e
                                                              for e in events}.values())


def test_processor_unknown_version_and_inexact_amount_are_dead_letters(streamed):
    _, sink, router = streamed
    dead = sorted(sink.rows("dead_letter"), key=lambda r: r[4])
    assert [r[5] for r in dead] == REASONS
    assert [json.loads(r[6])["event_id"] for r in dead] == ["new-v3", "new-cents",
                                                            "new-foreign"]
    assert router.dead_letters == 3
    counted = {r[1] for r in sink.rows("sessions")}
    assert counted  # ...and no table counts them: equal to the truth above


@pytest.fixture(scope="module")
def csv_days(tmp_path_factory):
    """Two CSV days: the first of v1 and v2 events (every version's columns), the second
    of v1 events (the internal header), read together by the batch job."""
    from services.batch_generator.csv_days import run_generate
    from services.simulator.model import Noise, SimConfig

    folder = tmp_path_factory.mktemp("days")
    cfg = SimConfig(seed=6, events_per_second=3_000 / 86_400, noise=Noise(duplicate_rate=0.02))
    start = 1767571200000  # 2026-01-05
    run_generate(cfg, 1, folder, start, workers=1, progress=False, schema_version="mix")
    run_generate(cfg, 1, folder, start + 86_400_000, workers=1, progress=False)
    return folder


def test_processor_batch_reads_mixed_days_exactly(csv_days):
    from testing.csv_reader import read_events

    files = sorted(csv_days.glob("*.csv"))
    headers = {f.read_text().split("\n", 1)[0].count(",") for f in files}
    assert len(headers) == 2  # a mixed day and a v1 day
    checked = invalid_rows_marked(read_csv_days(local_session(), files)).cache()
    rows, invalid, example = validate(checked)
    assert invalid == 0, example
    frames = batch_tables(checked.drop("reason", "_all"))
    received = read_events(csv_days)
    assert rows == received.height > 5000
    expected = truth(received)
    try:
        for t in tb.ANALYTICS:
            got = normalise([tuple(r) for r in frames[t.name].collect()])
            assert got == normalise(expected[t.name].rows()), t.name
    finally:
        checked.unpersist()


def test_processor_batch_check_names_a_mixed_days_broken_row(csv_days, tmp_path):
    path = next(csv_days.glob("*05.csv"))
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    i = next(k for k, line in enumerate(lines) if ",INR," in line
             and line.split(",")[header.index("price_minor")])
    row = lines[i].split(",")
    row[header.index("price_minor")] = str(int(row[header.index("price_minor")]) + 1)
    bad = tmp_path / path.name
    bad.write_text("\n".join([*lines[:i], ",".join(row), *lines[i + 1:]]) + "\n")
    _, invalid, example = validate(invalid_rows_marked(read_csv_days(local_session(), [bad])))
    assert invalid == 1 and "price_minor is not a whole number of US cents" in example
    # the batch job stops on it, before writing anything, and names it the same way
    with pytest.raises(ClickstreamError, match="1 rows break the event schema, e.g. .*"
                       "price_minor is not a whole number of US cents"):
        run_batch(get_settings(), bad, spark=local_session())


def test_processor_batch_stops_on_a_resend_that_is_not_an_exact_copy(csv_days, tmp_path):
    path = next(csv_days.glob("*06.csv"))
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("page_duration_ms")] = str(int(row[header.index("page_duration_ms")]) + 1)
    bad = tmp_path / path.name
    bad.write_text("\n".join([*lines, ",".join(row)]) + "\n")
    event_id = row[header.index("event_id")]
    with pytest.raises(ClickstreamError, match=f"1 event_ids appear with different contents, "
                       f"e.g. {event_id}"):
        run_batch(get_settings(), bad, spark=local_session())
