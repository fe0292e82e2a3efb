"""`produce` into real Kafka, consumed back: count, keys and schema."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic

from services.producer.kafka_sink import KafkaSink
from services.producer.run import density, run_produce
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
