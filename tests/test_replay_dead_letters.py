"""`clickstream replay-dead-letters` against a fake Cassandra and a fake sink (the real
servers are in integration_tests/test_schema_versions_pipeline.py): which rows it picks,
that it sends each payload once, and that it marks nothing when Kafka fails."""

from __future__ import annotations

import datetime as dt
from collections import namedtuple

import pytest
from click.testing import CliRunner
from test_producer_run import FakeSink, settings

from services.cli import cli
from services.producer import replay
from shared import tables as tb
from shared.errors import ClickstreamError

Letter = namedtuple("Letter", "day received_at source kafka_partition kafka_offset reason "
                              "payload")
Mark = namedtuple("Mark", "day received_at source kafka_partition kafka_offset")
T0 = dt.datetime(2026, 12, 3, 10, 0)


class Sink(FakeSink):
    """The producer's fake sink, with the call replay makes (the client's partitioner)."""

    topic = "clickstream"

    def send_partitioned(self, records):
        self.send_many((key, value) for key, value, _ in records)


class FakeSession:
    """The three statements of `replay`, on lists of rows (naive UTC times, as the driver
    gives them)."""

    def __init__(self, letters):
        self.letters = letters
        self.marks: list[tuple] = []

    def prepare(self, cql):
        return cql

    def execute(self, cql, params):
        day, since, until = params
        since, until = (t.astimezone(dt.UTC).replace(tzinfo=None) for t in (since, until))
        rows = self.marks if "FROM dead_letter_replays" in cql else self.letters
        out = [r for r in rows if r[0] == day and since <= r[1] < until]
        if "FROM dead_letter_replays" in cql:
            return [Mark(*r[:5]) for r in out]
        return out


class FakeCluster:
    def shutdown(self):
        pass


def letter(minute: int, reason: str, offset: int, payload: str | None = None) -> Letter:
    t = T0 + dt.timedelta(minutes=minute)
    return Letter(t.date(), t, "kafka:clickstream", 0, offset, reason,
                  payload or f'{{"session_id": "s{offset}", "schema_version": 3}}')


@pytest.fixture
def session(monkeypatch):
    s = FakeSession([
        letter(0, "unknown schema_version", 1),
        letter(5, "unknown schema_version", 2),
        letter(6, "not a JSON object of the event schema", 3, "{not json"),
        letter(60 * 14, "unknown schema_version", 4),  # the next day (00:00 UTC)
        letter(-30, "unknown schema_version", 5),  # before --since
    ])

    def mark(session, stmt, args, raise_on_first_error=True):
        session.marks.extend(args)

    monkeypatch.setattr("shared.clients.cassandra.connect", lambda *a, **k: (FakeCluster(), s))
    monkeypatch.setattr("cassandra.concurrent.execute_concurrent_with_args", mark)
    return s


def utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC)


def test_replay_sends_the_matching_dead_letters_once_then_skips_them(session):
    sink = Sink()
    result = replay.run_replay(settings(), "unknown schema", utc(T0), utc(T0 + dt.timedelta(
        days=1)), sink=sink)
    assert (result.matched, result.already, result.sent) == (3, 0, 3)
    assert [v for _, v in sink.records] == [session.letters[i].payload.encode()
                                            for i in (0, 1, 3)]
    assert [k for k, _ in sink.records] == [b"s1", b"s2", b"s4"]  # by session, as produced
    assert [m[4] for m in session.marks] == [1, 2, 4]
    assert all(m[6] == "clickstream" for m in session.marks)

    again = Sink()
    result = replay.run_replay(settings(), "unknown schema", utc(T0), utc(T0 + dt.timedelta(
        days=1)), sink=again)
    assert (result.matched, result.already, result.sent) == (3, 3, 0)
    assert again.records == []


def test_replay_dry_run_counts_and_changes_nothing(session):
    sink = Sink()
    result = replay.run_replay(settings(), "", utc(T0), utc(T0 + dt.timedelta(hours=1)),
                               dry_run=True, sink=sink)
    assert result.by_reason == {"unknown schema_version": 2,
                                "not a JSON object of the event schema": 1}
    assert sink.records == [] and session.marks == []


def test_replay_marks_nothing_when_kafka_fails(session):
    sink = Sink(fail_after=1)
    with pytest.raises(ClickstreamError, match="1 of 2 dead letters were not acknowledged"):
        replay.run_replay(settings(), "unknown schema", utc(T0),
                          utc(T0 + dt.timedelta(hours=1)), sink=sink)
    assert session.marks == [] and sink.closed


def test_replay_days_and_keys():
    # the day partitions a window reads: the shared helper the dashboard reads with too
    assert list(tb.days_between(utc(T0), utc(T0 + dt.timedelta(hours=15)))) == [
        dt.date(2026, 12, 3), dt.date(2026, 12, 4)]
    assert list(tb.days_between(utc(T0), utc(dt.datetime(2026, 12, 4)))) == [
        dt.date(2026, 12, 3)]
    assert replay.session_key('{"session_id": "abc"}') == b"abc"
    assert replay.session_key("{not json") is None and replay.session_key("[1]") is None


def test_replay_cli_says_what_it_did(session, monkeypatch):
    sinks = []

    class KafkaSink(Sink):
        def __init__(self, settings):
            super().__init__()
            self.topic = settings.kafka_topic
            sinks.append(self)

    monkeypatch.setattr("services.producer.kafka_sink.KafkaSink", KafkaSink)
    args = ["replay-dead-letters", "--reason", "unknown schema_version",
            "--since", "2026-12-03T10:00:00Z", "--until", "2026-12-04"]
    dry = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: would replay 2 dead letters into clickstream" in dry.output
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    assert "replayed 2 dead letters into clickstream" in done.output
    done = CliRunner().invoke(cli, args)
    assert "replayed 0 dead letters into clickstream; 2 replayed before, skipped" in done.output
    bad = CliRunner().invoke(cli, [*args[:3], "--since", "2026-12-05", "--until", "2026-12-04"])
    assert bad.exit_code == 1 and "must be after --since" in bad.output
