"""Schema versions without servers: v2 derived from v1, exact conversions both ways, v2's
rules, the producer's and simulate's --schema-version, and mixed CSV days read back."""

from __future__ import annotations

import functools

import pytest
from click.testing import CliRunner
from test_events_schema import event, event_v2, version_rule_breaks
from test_producer_run import START, FakeSink, settings

from services.cli import cli
from services.producer.run import density, run_produce
from services.simulator.malformed import MALFORMED
from services.simulator.model import Noise, SimConfig, Simulator
from services.simulator.rows import row_to_event
from services.simulator.versions import VersionedEncoder
from shared import events
from shared.events import (
    RATES,
    V1,
    V2,
    InvalidEvent,
    decode,
    decode_as_sent,
    encode,
    from_internal,
    to_internal,
    version_for,
)


@functools.cache
def simulated(n: int = 20_000, seed: int = 3) -> tuple[dict, ...]:
    """Internal events of the simulator (every country, so every currency it uses)."""
    out = []
    for row in Simulator(SimConfig(seed=seed, events_per_second=50)).rows(START):
        out.append(row_to_event(row))
        if len(out) == n:
            return tuple(out)
    raise AssertionError("the simulator stopped")


# ---------------------------------------------------------------- the declaration
def test_v2_is_v1_derived_renamed_priced_and_extended():
    internal_of = {v: k for k, v in V2.source.items()}
    assert V2.names == (*(V2.source[n] for n in V1.names), "currency", "consent")
    assert {k: v for k, v in V2.source.items() if k != v} == {
        "page_duration_ms": "dwell_ms", "price_cents": "price_minor",
        "revenue_cents": "revenue_minor"}
    assert V2.priced == ("price_cents", "revenue_cents")
    for f in V2.fields:  # a derived field keeps its v1 kind and nullability
        if f.name in internal_of:
            src = V1.by_name[internal_of[f.name]]
            assert (f.kind, f.nullable) == (src.kind, src.nullable), f.name
    assert V2.allowed == {**V1.allowed, "currency": tuple(RATES)}
    assert events.SCHEMA_VERSIONS == (1, 2)
    assert events.WIRE_NAMES == (*V1.names, "dwell_ms", "price_minor", "revenue_minor",
                                 "currency", "consent")
    assert events.csv_header("1") == events.CSV_HEADER == V1.names
    assert events.csv_header("2") == events.csv_header("mix") == events.WIRE_NAMES


def test_every_representation_derives_per_version():
    import polars as pl

    for schema in (V1, V2):
        assert events.spark_schema(schema.fields).fieldNames() == list(schema.names)
        assert events.polars_schema(schema.fields).names() == list(schema.names)
    assert events.polars_schema(events.WIRE_FIELDS)["price_minor"] == pl.Int64
    assert events.polars_schema(events.WIRE_FIELDS)["consent"] == pl.Boolean
    assert events.spark_schema() == events.spark_schema(V1.fields)


@pytest.mark.parametrize("change,error", [
    ({"rename": {"nope": "x"}}, "cannot rename"),
    ({"rename": {"page": "event_id"}}, "duplicate"),
    ({"price": {"price_minor": "price_again"}}, "priced already"),
    ({"add": (events.Field("coupon", events.Kind.STRING, True, "a code"),)}, "no default"),
])
def test_derive_refuses_an_inconsistent_version(change, error):
    with pytest.raises(ValueError, match=error):
        V2.derive(3, **change)


def test_a_further_version_derives_from_v2_and_maps_back_through_it():
    coupon = events.Field("coupon", events.Kind.STRING, True, "a code")
    v3 = V2.derive(3, rename={"dwell_ms": "dwell"}, add=(coupon,),
                   defaults={"coupon": events.Default((), lambda: None)})
    assert v3.source["page_duration_ms"] == "dwell" and v3.priced == V2.priced
    assert v3.names[-3:] == ("currency", "consent", "coupon")


# ---------------------------------------------------------------- conversions
def test_v1_to_v2_and_back_is_exact_for_every_event_and_currency():
    evs = simulated()  # those with money, and a sample of the others
    currencies = set()
    for e in (e for i, e in enumerate(evs) if e["price_cents"] is not None or i % 10 == 0):
        e2 = from_internal(e, 2)
        assert list(e2) == list(V2.names)
        assert e2["schema_version"] == 2 and e2["dwell_ms"] == e["page_duration_ms"]
        rate = RATES[e2["currency"]]
        if e["price_cents"] is not None:
            assert e2["price_minor"] == e["price_cents"] * rate
        currencies.add(e2["currency"])
        assert to_internal(e2) == e
        assert decode(encode(e2)) == e  # the wire: v2 JSON normalised on decode
        assert decode_as_sent(encode(e2)) == e2
        assert from_internal(to_internal(e2), 2) == e2
    assert currencies == {"USD", "INR", "BRL"}
    assert any(e["revenue_cents"] for e in evs)


def test_v2_currency_and_consent_are_deterministic_per_visitor():
    evs = simulated()
    by_user = {}
    for e in evs:
        e2 = from_internal(e, 2)
        assert by_user.setdefault(e["user_id"], (e2["currency"], e2["consent"])) == (
            e2["currency"], e2["consent"])
    consent = [c for _, c in by_user.values()]
    assert 0.75 < sum(consent) / len(consent) < 1.0


def test_mix_picks_each_events_version_by_its_event_id():
    ids = [e["event_id"] for e in simulated()]
    picks = [version_for("mix", i) for i in ids]
    assert picks == [version_for("mix", i) for i in ids]  # deterministic
    assert 0.4 < picks.count(2) / len(picks) < 0.6
    assert {version_for("1", i) for i in ids} == {1} and {version_for("2", i) for i in ids} == {2}


# ---------------------------------------------------------------- rules of v2
def test_v2_event_is_valid_and_each_broken_rule_names_its_field():
    events.validate(event_v2())
    for name, bad in version_rule_breaks():
        with pytest.raises(InvalidEvent, match=name):
            events.validate(bad)


def test_v2_amount_that_is_not_whole_cents_is_invalid_with_a_clear_reason():
    with pytest.raises(InvalidEvent, match=r"price_minor is not a whole number of US cents "
                                           r".*\(582 INR, 83 per cent\)"):
        events.validate(event_v2(price_minor=582))
    events.validate(event_v2(price_minor=581))  # 7 cents


@pytest.mark.parametrize("version,reason", [(3, "unknown schema_version 3"),
                                            (None, "schema_version is null"),
                                            ("2", "schema_version should be int")])
def test_unknown_or_broken_version_is_invalid(version, reason):
    with pytest.raises(InvalidEvent, match=reason):
        events.validate(event(schema_version=version))


# ---------------------------------------------------------------- producer and simulate
@pytest.mark.parametrize("mode", ["2", "mix"])
def test_encoder_gives_the_reference_bytes_of_each_events_version(mode):
    noise = Noise(malformed_rate=0.05, duplicate_rate=0.05)
    encode_row = VersionedEncoder(mode)
    versions = set()
    for i, row in enumerate(Simulator(SimConfig(seed=5, events_per_second=40,
                                                noise=noise)).rows(START)):
        if i == 4000:
            break
        got = encode_row(row)
        if row[0] is not MALFORMED:
            e = row_to_event(row)
            v = version_for(mode, e["event_id"])
            versions.add(v)
            assert got == encode(from_internal(e, v))
            assert decode(got) == e
    assert versions == ({2} if mode == "2" else {1, 2})


def test_producer_sends_the_same_events_in_the_chosen_versions():
    cfg = SimConfig(seed=1, events_per_second=density(0, 1))
    sent = {}
    for mode in ("1", "mix"):
        sink = FakeSink()
        run_produce(settings(), cfg, START, rate=0, count=3000, feeder=mode == "mix",
                    sink=sink, report=lambda line: None, schema_version=mode)
        sent[mode] = sink.records
    assert [k for k, _ in sent["1"]] == [k for k, _ in sent["mix"]]  # keys: session ids
    assert [decode(v) for _, v in sent["1"]] == [decode(v) for _, v in sent["mix"]]
    versions = [decode_as_sent(v)["schema_version"] for _, v in sent["mix"]]
    assert 1000 < versions.count(2) < 2000


def test_simulate_schema_version_mix_is_reproducible_and_normalises_to_v1(tmp_path):
    def run(*args):
        r = CliRunner().invoke(cli, ["simulate", "--seed", "7", "--events", "800", *args])
        assert r.exit_code == 0, r.output
        return r.stdout_bytes.splitlines()

    v1, mix = run(), run("--schema-version", "mix")
    assert [decode(line) for line in mix] == [decode(line) for line in v1]
    assert {decode_as_sent(line)["schema_version"] for line in mix} == {1, 2}
    bad = CliRunner().invoke(cli, ["simulate", "--schema-version", "3"])
    assert bad.exit_code == 1 and bad.output.startswith("error: ")


def test_simulate_workers_write_the_mixed_bytes_of_one_process(monkeypatch):
    import io

    from services.simulator import parallel
    from services.simulator.run import run_simulate

    monkeypatch.setattr(parallel, "CHUNK_ROWS", 1)  # a chunk per minute, even for a few events
    config = SimConfig(seed=9, events_per_second=30.0, noise=Noise(malformed_rate=0.05))
    one, two = io.BytesIO(), io.BytesIO()
    run_simulate(config, START, 3000, one, 1, schema_version="mix")
    parallel.run_simulate_parallel(config, START, 3000, two, 2, schema_version="mix")
    assert one.getvalue() == two.getvalue() and one.getvalue().count(b"\n") == 3000
    assert b'"schema_version":2' in one.getvalue()


# ---------------------------------------------------------------- CSV days
@pytest.fixture(scope="module")
def days(tmp_path_factory):
    from services.batch_generator.csv_days import run_generate

    cfg = SimConfig(seed=4, events_per_second=20_000 / 86_400,
                    noise=Noise(duplicate_rate=0.02, late_rate=0.02))
    out = {}
    for mode in ("1", "2", "mix"):
        folder = tmp_path_factory.mktemp(f"v{mode}")
        run_generate(cfg, 1, folder, START, workers=1, progress=False, schema_version=mode)
        out[mode] = next(folder.glob("*.csv"))
    return out


def test_mixed_and_v2_days_carry_the_version_column_and_read_back_exactly(days):
    import polars as pl

    from testing.csv_reader import read_events
    from testing.truth import read_csv_days

    v1 = read_events(days["1"])
    for mode in ("2", "mix"):
        header = days[mode].read_text().splitlines()[0].split(",")
        assert tuple(header) == events.CSV_HEADER_WIRE
        raw = pl.read_csv(days[mode], columns=["schema_version"])
        assert set(raw["schema_version"]) == ({2} if mode == "2" else {1, 2})
        assert read_events(days[mode]).equals(v1), mode
        assert read_csv_days(days[mode].parent).equals(read_csv_days(days["1"].parent)), mode
    assert v1.height > 15_000


@pytest.mark.parametrize("column,value,error", [
    ("price_minor", "101", "price_minor is not a whole number of US cents"),
    ("currency", "EUR", "unknown currency"),
    ("page_duration_ms", "5", "page_duration_ms is not a field of schema_version 2"),
    ("schema_version", "3", "unknown schema_version 3"),
    ("consent", "", "empty required values in consent"),
])
def test_reader_keeps_the_rules_of_each_rows_version(days, tmp_path, column, value, error):
    from shared.errors import ClickstreamError
    from testing.csv_reader import read_events

    lines = days["2"].read_text().splitlines()
    header = lines[0].split(",")
    i = next(k for k, line in enumerate(lines[1:], 1) if ",INR," in line and
             line.split(",")[header.index("price_minor")])
    row = lines[i].split(",")
    row[header.index(column)] = value
    bad = tmp_path / "events-2026-01-05.csv"
    bad.write_text("\n".join([lines[0], lines[1], ",".join(row)]) + "\n")
    with pytest.raises(ClickstreamError, match=error):
        read_events(bad)
