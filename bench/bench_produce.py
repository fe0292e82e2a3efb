"""Producer throughput into the local broker: `clickstream produce`'s path (feeder processes
+ kafka-python producers; 1 sender with 1 and 2 feeders, 2 senders with the default
feeders, the variants alternating round after round; acks=all, idempotent, lz4) with zero
loss checked by consuming the topic back, beside Kafka's own Java
ProducerPerformance at the same record size and settings (run before and after ours; the
better of the two is the ceiling) and our ratio to it. Uses the broker of the default
settings when one answers (`make up`); otherwise starts a private single-broker Kafka
(local stack, free ports, temp folder) for the run and stops it afterwards.

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

from services.producer.run import DEFAULT_FEEDERS, DEFAULT_SENDERS, batches, density, run_produce
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


def _broker_cpu(settings: Settings) -> float | None:
    """CPU seconds so far of the process listening on the first bootstrap port (the
    broker, on this machine), or None if it cannot be told."""
    port = settings.bootstrap_servers.split(",")[0].rpartition(":")[2]
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True,
                             text=True, timeout=10).stdout
        pid = re.search(r"pid=(\d+)", out).group(1)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, AttributeError, subprocess.SubprocessError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_event(before: float | None, after: float | None, n: int) -> float | None:
    return None if before is None or after is None else (after - before) / n * 1e6


def _java(settings: Settings, n: int, size: int) -> dict:
    topic = _new_topic(settings)
    try:
        cp = str(settings.jars_dir / "kafka" / "*")
        b0, c0 = _broker_cpu(settings), os.times()
        out = subprocess.run(
            ["java", "-cp", cp, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
             "--num-records", str(n), "--record-size", str(size), "--throughput", "-1",
             "--producer-props", f"bootstrap.servers={settings.bootstrap_servers}", "acks=all",
             "enable.idempotence=true", "compression.type=lz4", "linger.ms=50",
             "batch.size=524288"],
            capture_output=True, text=True, timeout=600, check=True,
        ).stdout
        c1, b1 = os.times(), _broker_cpu(settings)
        # last line: "N records sent, X records/sec (Y MB/sec), ..."
        return {"rate": float(re.findall(r"records sent, ([\d.]+) records/sec", out)[-1]),
                "cpu_java": (c1.children_user - c0.children_user + c1.children_system
                             - c0.children_system) / n * 1e6,
                "cpu_broker": _per_event(b0, b1, n)}
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


def _ours(settings: Settings, n: int, senders: int, feeders: int = DEFAULT_FEEDERS) -> dict:
    """One `produce --rate 0 --count n --senders S --feeders F` run into a new topic,
    consumed back."""
    topic = _new_topic(settings)
    try:
        s = settings.model_copy(update={"kafka_topic": topic})
        b0, c0 = _broker_cpu(settings), os.times()
        result = run_produce(s, SimConfig(seed=1, events_per_second=density(0, 1)), START,
                             rate=0, count=n, feeder=True, senders=senders,
                             feeders=feeders, report=lambda line: None)
        c1 = os.times()  # the feeder and senders have been joined: they are in children_*
        b1 = _broker_cpu(settings)
        return {
            "load": os.getloadavg()[0],
            "cpu_broker": _per_event(b0, b1, n),
            "rate": result.acked / result.seconds,
            "lost": n - _topic_count(settings, topic),
            "accounted": result.sent == result.acked + result.failed,
            "cpu_main": (c1.user - c0.user + c1.system - c0.system) / n * 1e6,
            "cpu_children": (c1.children_user - c0.children_user
                             + c1.children_system - c0.children_system) / n * 1e6,
        }
    finally:
        _delete_topic(settings, topic)


def _run(quick: bool, settings: Settings, where: str) -> list[dict]:
    n = 100_000 if quick else 1_000_000
    runs = 1 if quick else 3
    size = _mean_record_size()
    # Java before and after ours, the better of the two: the machine is shared and the
    # broker's JIT warms up, so the ratio is taken against the ceiling at its best
    java_runs = [_java(settings, n, size)]
    variants = sorted({(1, 1), (1, 2), (2, DEFAULT_FEEDERS), (DEFAULT_SENDERS, DEFAULT_FEEDERS)})
    ours: dict[tuple[int, int], list[dict]] = {v: [] for v in variants}
    for _ in range(runs):  # alternating, so that a change of load hits each alike
        for senders, feeders in variants:
            ours[senders, feeders].append(_ours(settings, n, senders, feeders))
    java_runs.append(_java(settings, n, size))
    java = [j["rate"] for j in java_runs]
    ceiling = max(java)
    records = []
    for (senders, feeders), rs in ours.items():
        rates = [r["rate"] for r in rs]
        lost = [r["lost"] for r in rs]
        median = statistics.median(rates)
        suffix = ("" if senders == DEFAULT_SENDERS else f"_senders_{senders}") + (
            "" if feeders == DEFAULT_FEEDERS else f"_feeders_{feeders}")
        records += [
            {"name": f"produce_events_per_s{suffix}", "value": median, "unit": "events/s",
             "runs": rates, "target": 50_000,
             "cpu_us_per_event_main": [r["cpu_main"] for r in rs],
             "cpu_us_per_event_children": [r["cpu_children"] for r in rs],
             "cpu_us_per_event_broker": [r["cpu_broker"] for r in rs],
             "load": [r["load"] for r in rs],
             "notes": f"{n:,} simulated events, --senders {senders}, --feeders {feeders}, "
                      "acks=all, idempotent, lz4; cpu_us_per_event_* = CPU µs per event of "
                      "the main process, of its children (feeders + senders, incl. start-up) "
                      "and of the broker; load = 1-minute load average after each run; "
                      f"records lost (produced - consumed back) per run: {lost}; sent = "
                      f"acked + failed in every run: {all(r['accounted'] for r in rs)}; "
                      f"{where}"},
            {"name": f"produce_ratio_to_java{suffix}", "value": median / ceiling,
             "unit": "ratio", "runs": [r / ceiling for r in rates], "target": 0.6,
             "notes": f"our median over the better of two ProducerPerformance runs "
                      f"({ceiling:,.0f} records/s), one before and one after ours"},
            {"name": f"produce_lost_events{suffix}", "value": max(lost), "unit": "events",
             "runs": lost, "target": 0, "notes": "consumed back from the topic"},
        ]
    records.append(
        {"name": "kafka_java_producer_perf_per_s", "value": ceiling, "unit": "records/s",
         "runs": java, "target": None,
         "cpu_us_per_record_java": [j["cpu_java"] for j in java_runs],
         "cpu_us_per_record_broker": [j["cpu_broker"] for j in java_runs],
         "notes": f"ProducerPerformance, {size} B records, acks=all, idempotent, lz4, linger "
                  "50 ms, 512 KiB batches: the better of a run before and one after ours; "
                  "cpu_us_per_record_* = CPU µs per record of the JVM (start-up included) "
                  "and of the broker"})
    return records


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
