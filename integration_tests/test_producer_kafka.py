"""`produce` into real Kafka, consumed back: count, keys and schema."""

from __future__ import annotations

import re
import signal
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic

from services.producer.kafka_sink import KafkaSink, default_partition
from services.producer.run import batches, density, run_produce
from services.simulator.model import SimConfig
from shared.events import decode

START = 1767571200000
N = 20_000


def _topic(settings, partitions=3) -> str:
    name = f"producer-test-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    return name


def consume_all(settings, topic: str, expected: int, timeout_s: float = 60) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout_s * 1000))
    records = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


@pytest.mark.integration
def test_producer_events_arrive_complete_and_valid(stack):
    settings = stack.settings
    topic = _topic(settings)
    sink = KafkaSink(settings, topic=topic)
    result = run_produce(settings, SimConfig(seed=21, events_per_second=density(0, 1)), START,
                         rate=0, count=N, feeder=True, sink=sink, report=lambda line: None)
    assert result.acked == N and result.failed == 0
    records = consume_all(settings, topic, N)
    assert len(records) == N
    events = [decode(r.value) for r in records]
    assert len({e["event_id"] for e in events}) == N
    for r, e in zip(records, events, strict=True):
        assert r.key == e["session_id"].encode()
    # one session, one partition: its events keep their delivery order, which is the
    # collector's (`sent_at`); device timestamps may differ by network jitter
    by_session: dict = {}
    for e in events:
        by_session.setdefault(e["session_id"], []).append(e["sent_at"])
    assert all(ts == sorted(ts) for ts in by_session.values())


def _by_partition(records) -> dict:
    out: dict = {}
    for r in records:
        out.setdefault(r.partition, []).append((r.key, r.value))
    return out


@pytest.mark.integration
def test_producer_whole_batches_write_what_send_per_record_writes(stack, monkeypatch):
    from services.producer import record_batches

    settings = stack.settings
    config = SimConfig(seed=23, events_per_second=density(0, 1))
    fast, slow = _topic(settings), _topic(settings)
    sink = KafkaSink(settings, topic=fast)
    assert sink._appender is not None  # this client's batches are reproduced: fast path
    run_produce(settings, config, START, rate=0, count=N, feeder=False, sink=sink,
                report=lambda line: None)
    monkeypatch.setattr(record_batches, "check", lambda *args: False)
    sink = KafkaSink(settings, topic=slow)
    assert sink._appender is None  # send() per record
    result = run_produce(settings, config, START, rate=0, count=N, feeder=False, sink=sink,
                         report=lambda line: None)
    assert result.acked == N
    fast_records = _by_partition(consume_all(settings, fast, N))
    assert fast_records == _by_partition(consume_all(settings, slow, N))
    assert sum(map(len, fast_records.values())) == N


@pytest.mark.integration
def test_produce_cli_against_real_kafka(stack):
    from integration_tests.helpers import run_cli

    settings = stack.settings
    topic = _topic(settings)
    s = settings.model_copy(update={"kafka_topic": topic})
    done = run_cli(s, "produce", "--count", "3000", "--rate", "0", "--seed", "5",
                   "--start", "2026-01-05T12:00:00Z")
    assert done.returncode == 0, done.stderr
    assert "acknowledged 3,000" in done.stderr
    assert len(consume_all(settings, topic, 3000)) == 3000


@pytest.mark.integration
@pytest.mark.parametrize("senders, partitions, feeders",
                         [(2, 3, 1), (3, 4, 1), (1, 3, 2), (2, 4, 3)])
def test_producer_senders_deliver_each_event_once_in_session_order(stack, senders, partitions,
                                                                   feeders):
    settings = stack.settings
    topic = _topic(settings, partitions)
    s = settings.model_copy(update={"kafka_topic": topic})
    config = SimConfig(seed=22, events_per_second=density(0, 1))
    result = run_produce(s, config, START, rate=0, count=N, feeder=True, senders=senders,
                         feeders=feeders, report=lambda line: None)
    # the parent's sums of what each sender counted
    assert result.sent == result.acked + result.failed == N and result.failed == 0
    records = consume_all(settings, topic, N)
    assert len(records) == N
    # the very events of the simulator, each once, in the partition of its key
    expected = [pair for _, pairs in batches(config, START, N) for pair in pairs]
    assert sorted((r.key, r.value) for r in records) == sorted(expected)
    parts = sorted({r.partition for r in records})
    assert parts == list(range(partitions))
    assert all(r.partition == default_partition(r.key, parts) for r in records)
    # each partition holds one feeder's events in its order (whatever the feeders)
    for p in parts:
        held = [(r.key, r.value) for r in sorted(records, key=lambda r: r.offset)
                if r.partition == p]
        assert held == [pair for pair in expected if default_partition(pair[0], parts) == p]
    # one sender per partition, fed in delivery order: each session's order holds
    by_session: dict = {}
    for r in records:
        by_session.setdefault(r.key, []).append(decode(r.value)["sent_at"])
    assert all(ts == sorted(ts) for ts in by_session.values())


@pytest.mark.integration
@pytest.mark.parametrize("feeders", ["1", "2"], ids=["1 feeder", "2 feeders"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_produce_cli_senders_flush_every_process_on_a_signal(stack, sig, feeders):
    from integration_tests.helpers import Output, popen_cli

    settings = stack.settings
    topic = _topic(settings)
    s = settings.model_copy(update={"kafka_topic": topic})
    proc = popen_cli(s, "produce", "--rate", "0", "--senders", "2", "--feeders", feeders,
                     "--seed", "6",
                     "--start", "2026-01-05T12:00:00Z", "--report-every", "0.5")
    err = Output(proc.stderr)
    try:
        err.wait_for("acknowledged", timeout=120)  # a progress line: records are flowing
        proc.send_signal(sig)
        assert proc.wait(timeout=90) == 128 + sig
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = err.wait_for("done", timeout=10)
    sent, acked, failed = (int(m.replace(",", "")) for m in
                           re.findall(r"(?:sent|acknowledged|failed) ([\d,]+)", done))
    assert failed == 0 and sent == acked > 0
    # what the producer counted as acknowledged is exactly what the topic holds
    assert len(consume_all(settings, topic, acked + 1, timeout_s=15)) == acked
