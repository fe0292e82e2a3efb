"""The real servers answer their own protocols: Kafka, Cassandra, Spark (local and standalone)."""

from __future__ import annotations

import uuid

from services.processor.session import build_session
from shared.clients.cassandra import connect


def test_kafka_round_trip_with_kafka_python(stack):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    s = stack.settings
    marker = uuid.uuid4().hex.encode()
    producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all")
    meta = producer.send(s.kafka_topic, key=b"k", value=marker).get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False,
                             consumer_timeout_ms=10000)
    tp = TopicPartition(s.kafka_topic, meta.partition)
    consumer.assign([tp])
    consumer.seek(tp, meta.offset)
    got = next(iter(consumer))
    consumer.close()
    assert got.value == marker
    assert got.offset == meta.offset


def test_kafka_topic_has_configured_partitions(stack):
    from kafka import KafkaConsumer

    s = stack.settings
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers)
    try:
        assert len(consumer.partitions_for_topic(s.kafka_topic)) == s.kafka_partitions
    finally:
        consumer.close()


def test_cassandra_cql_round_trip(stack):
    s = stack.settings
    cluster, session = connect(s, keyspace=s.cassandra_keyspace)
    try:
        session.execute("CREATE TABLE IF NOT EXISTS roundtrip (id uuid PRIMARY KEY, note text)")
        key = uuid.uuid4()
        insert = session.prepare("INSERT INTO roundtrip (id, note) VALUES (?, ?)")
        session.execute(insert, (key, "hello"))
        row = session.execute(session.prepare("SELECT note FROM roundtrip WHERE id = ?"),
                              (key,)).one()
        assert row.note == "hello"
    finally:
        cluster.shutdown()


def test_schema_step_created_every_table(stack):
    from shared.tables import TABLES

    s = stack.settings
    cluster, session = connect(s)
    try:
        rows = session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
            (s.cassandra_keyspace,),
        )
        names = {r.table_name for r in rows}
    finally:
        cluster.shutdown()
    assert {t.name for t in TABLES} <= names


def _kafka_to_cassandra_job(settings, master: str, marker: str) -> None:
    """A Spark job reading the topic (Kafka source jar) and writing a row (connector jar)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(settings.kafka_topic, value=marker.encode()).get(timeout=30)
    producer.close()

    cluster, session = connect(settings, keyspace=settings.cassandra_keyspace)
    session.execute("CREATE TABLE IF NOT EXISTS spark_probe (marker text PRIMARY KEY, n bigint)")
    cluster.shutdown()

    spark = build_session(settings, app_name="stack-probe", master=master)
    try:
        from pyspark.sql import functions as F

        df = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", settings.bootstrap_servers)
            .option("subscribe", settings.kafka_topic)
            .option("startingOffsets", "earliest")
            .option("kafka.request.timeout.ms", "10000")
            .option("kafka.default.api.timeout.ms", "10000")
            .load()
            .select(F.col("value").cast("string").alias("marker"))
            .where(F.col("marker") == marker)
            .groupBy("marker")
            .agg(F.count("*").alias("n"))
        )
        (df.write.format("org.apache.spark.sql.cassandra")
         .options(keyspace=settings.cassandra_keyspace, table="spark_probe")
         .mode("append").save())
    finally:
        spark.stop()


def _probe_count(settings, marker: str) -> int | None:
    cluster, session = connect(settings, keyspace=settings.cassandra_keyspace)
    try:
        row = session.execute("SELECT n FROM spark_probe WHERE marker = %s", (marker,)).one()
        return row.n if row else None
    finally:
        cluster.shutdown()


def test_spark_local_job_reads_kafka_and_writes_cassandra(stack):
    marker = f"local-{uuid.uuid4().hex}"
    _kafka_to_cassandra_job(stack.settings, "local[2]", marker)
    assert _probe_count(stack.settings, marker) == 1


def test_spark_job_runs_on_the_standalone_cluster(spark_cluster):
    import json
    import urllib.request

    marker = f"cluster-{uuid.uuid4().hex}"
    _kafka_to_cassandra_job(spark_cluster, spark_cluster.spark_standalone_url, marker)
    assert _probe_count(spark_cluster, marker) == 1
    # the master really ran it: the application is listed as completed
    url = f"http://127.0.0.1:{spark_cluster.spark_master_webui_port}/json/"
    with urllib.request.urlopen(url, timeout=5) as r:
        state = json.loads(r.read())
    assert any(a["name"] == "stack-probe" for a in state["completedapps"])
