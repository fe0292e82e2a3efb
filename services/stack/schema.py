"""The schema step: the Kafka topic and the Cassandra keyspace + tables. Idempotent.

Run by `clickstream up` after the servers answer, and by `clickstream schema` on its own
(e.g. against an existing cluster). Never a side effect of starting the streaming job.
"""

from __future__ import annotations

import logging

from services.stack.kafka import ensure_topic
from shared.clients.cassandra import connect
from shared.settings import Settings
from shared.tables import TABLES

log = logging.getLogger(__name__)


def keyspace_cql(settings: Settings) -> str:
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {settings.cassandra_keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': "
        f"{settings.cassandra_replication_factor}}}"
    )


def apply_cassandra_schema(settings: Settings) -> int:
    """Create the keyspace and every table of the specs; returns the number of tables."""
    cluster, session = connect(settings, timeout=10)
    try:
        session.execute(keyspace_cql(settings), timeout=60)
        for table in TABLES:
            session.execute(table.create_cql(settings.cassandra_keyspace), timeout=60)
        return len(TABLES)
    finally:
        cluster.shutdown()


def apply_kafka_schema(settings: Settings) -> bool:
    created = ensure_topic(settings.bootstrap_servers, settings.kafka_topic,
                           settings.kafka_partitions, settings.kafka_replication_factor)
    log.info("topic %s %s", settings.kafka_topic, "created" if created else "exists")
    return created
