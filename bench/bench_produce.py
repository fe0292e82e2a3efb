"""Producer throughput into the local broker: `clickstream produce`'s path (feeder process +
one kafka-python producer, acks=all, idempotent, lz4) with zero loss checked by consuming
the topic back, beside Kafka's own Java ProducerPerformance at the same record size as the
ceiling. Needs a running broker (`make up`).

    python -m bench.bench_produce
"""

from __future__ import annotations

import re
import statistics
import subprocess
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from services.producer.kafka_sink import KafkaSink
from services.producer.run import batches, density, run_produce
from services.simulator.model import SimConfig
from shared.settings import Settings

START = 1767571200000 + 19 * 3_600_000


def _new_topic(settings: Settings) -> str:
    name = f"bench-produce-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name, settings.kafka_partitions, 1)])
    finally:
        admin.close()
    return name


def _delete_topic(settings: Settings, name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.delete_topics([name])
    except Exception:  # noqa: BLE001 - clean-up only
        pass
    finally:
        admin.close()


def _topic_count(settings: Settings, topic: str) -> int:
    """Records in the topic: end offsets, then a full read to confirm."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                             enable_auto_commit=False, consumer_timeout_ms=10_000,
                             auto_offset_reset="earliest")
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(parts)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        n = sum(1 for _ in consumer)
        assert n == sum(ends.values()), (n, ends)
        return n
    finally:
        consumer.close()


def _mean_record_size(n: int = 20_000) -> int:
    cfg = SimConfig(seed=1, events_per_second=density(0, 1))
    sizes = [len(v) for _, pairs in batches(cfg, START, n) for _, v in pairs]
    return round(statistics.mean(sizes))


def _java(settings: Settings, n: int, size: int) -> float:
    topic = _new_topic(settings)
    try:
        cp = str(settings.jars_dir / "kafka" / "*")
        out = subprocess.run(
            ["java", "-cp", cp, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
             "--num-records", str(n), "--record-size", str(size), "--throughput", "-1",
             "--producer-props", f"bootstrap.servers={settings.bootstrap_servers}", "acks=all",
             "compression.type=lz4", "linger.ms=50", "batch.size=524288"],
            capture_output=True, text=True, timeout=600, check=True,
        ).stdout
        # last line: "N records sent, X records/sec (Y MB/sec), ..."
        return float(re.findall(r"records sent, ([\d.]+) records/sec", out)[-1])
    finally:
        _delete_topic(settings, topic)


def run(quick: bool = False, settings: Settings | None = None) -> list[dict]:
    settings = settings or Settings()
    n = 100_000 if quick else 1_000_000
    rates, lost = [], []
    for _ in range(1 if quick else 3):
        topic = _new_topic(settings)
        try:
            sink = KafkaSink(settings, topic=topic)
            result = run_produce(settings, SimConfig(seed=1, events_per_second=density(0, 1)),
                                 START, rate=0, count=n, feeder=True, sink=sink,
                                 report=lambda line: None)
            rates.append(result.acked / result.seconds)
            lost.append(n - _topic_count(settings, topic))
        finally:
            _delete_topic(settings, topic)
    size = _mean_record_size()
    java = [_java(settings, n, size) for _ in range(1 if quick else 3)]
    return [
        {"name": "produce_events_per_s", "value": statistics.median(rates), "unit": "events/s",
         "runs": rates, "target": 50_000,
         "notes": f"{n:,} simulated events, acks=all, idempotent, lz4, feeder process; "
                  f"records lost (produced - consumed back) per run: {lost}"},
        {"name": "produce_lost_events", "value": max(lost), "unit": "events", "runs": lost,
         "target": 0, "notes": "consumed back from the topic"},
        {"name": "kafka_java_producer_perf_per_s", "value": statistics.median(java),
         "unit": "records/s", "runs": java, "target": None,
         "notes": f"ProducerPerformance, {size} B records, acks=all lz4 linger 50 ms: the ceiling"},
    ]


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
