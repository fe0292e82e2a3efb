"""Producer throughput into the local broker: `clickstream produce`'s path (feeder process +
one kafka-python producer, acks=all, idempotent, lz4) with zero loss checked by consuming
the topic back, beside Kafka's own Java ProducerPerformance at the same record size as the
ceiling. Uses the broker of the default settings when one answers (`make up`); otherwise
starts a private single-broker Kafka (local stack, free ports, temp folder) for the run and
stops it afterwards.

    python -m bench.bench_produce
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import uuid
from pathlib import Path

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


def _answers(settings: Settings, timeout: float = 2.0) -> bool:
    """Does anything accept a TCP connection on one of the bootstrap addresses?"""
    for address in settings.bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


@contextlib.contextmanager
def private_broker():
    """A single Kafka broker of our own (free ports, temp folder), always stopped."""
    from integration_tests.backends import local_settings
    from services.stack.stack import LocalStack

    tmp = Path(tempfile.mkdtemp(prefix="bench-produce-kafka-"))
    try:
        settings = local_settings(tmp)
        stack = LocalStack(settings, ["kafka"])
        try:
            stack.up()
            yield settings
        finally:
            stack.down()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(quick: bool = False, settings: Settings | None = None) -> list[dict]:
    if settings is None:
        default = Settings()
        if not _answers(default):
            with private_broker() as private:
                return _run(quick, private, "private broker started by the bench")
        settings = default
    return _run(quick, settings, f"broker at {settings.bootstrap_servers}")


def _run(quick: bool, settings: Settings, where: str) -> list[dict]:
    n = 100_000 if quick else 1_000_000
    rates, lost, cpu_main, cpu_feeder = [], [], [], []
    for _ in range(1 if quick else 3):
        topic = _new_topic(settings)
        try:
            sink = KafkaSink(settings, topic=topic)
            c0 = os.times()
            result = run_produce(settings, SimConfig(seed=1, events_per_second=density(0, 1)),
                                 START, rate=0, count=n, feeder=True, sink=sink,
                                 report=lambda line: None)
            c1 = os.times()  # the feeder process has been joined: it is in children_*
            cpu_main.append((c1.user - c0.user + c1.system - c0.system) / n * 1e6)
            cpu_feeder.append((c1.children_user - c0.children_user
                               + c1.children_system - c0.children_system) / n * 1e6)
            rates.append(result.acked / result.seconds)
            lost.append(n - _topic_count(settings, topic))
        finally:
            _delete_topic(settings, topic)
    size = _mean_record_size()
    java = [_java(settings, n, size) for _ in range(1 if quick else 3)]
    return [
        {"name": "produce_events_per_s", "value": statistics.median(rates), "unit": "events/s",
         "runs": rates, "target": 50_000,
         "cpu_us_per_event_producer": cpu_main, "cpu_us_per_event_feeder": cpu_feeder,
         "notes": f"{n:,} simulated events, acks=all, idempotent, lz4, feeder process; "
                  "cpu_us_per_event_* = CPU µs per event of the producer process (kafka-python, "
                  "all threads) and of the feeder (simulate + encode, incl. start-up); "
                  f"records lost (produced - consumed back) per run: {lost}; {where}"},
        {"name": "produce_lost_events", "value": max(lost), "unit": "events", "runs": lost,
         "target": 0, "notes": "consumed back from the topic"},
        {"name": "kafka_java_producer_perf_per_s", "value": statistics.median(java),
         "unit": "records/s", "runs": java, "target": None,
         "notes": f"ProducerPerformance, {size} B records, acks=all lz4 linger 50 ms: the ceiling"},
    ]


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
