"""Where the integration tests get real servers from: the local stack (JVM processes on
free ports in a temp folder) or testcontainers (where a Docker engine answers).

Both give the tests the same thing: a `Settings` pointing at running servers whose
topic, keyspace and tables exist. The tests never know which backend is behind it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from services.stack.ports import free_port
from services.stack.stack import LocalStack
from shared.settings import Settings

log = logging.getLogger(__name__)

# Pinned images, for the testcontainers backend (GitHub Actions, laptops with Docker).
# testcontainers' KafkaContainer drives the Confluent image's start scripts, so the broker
# image is Confluent's (7.9.x = Apache Kafka 3.9, KRaft); our clients speak to 3.9 and 4.x.
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.1"
CASSANDRA_IMAGE = "cassandra:5.0.9"


@dataclass
class Endpoints:
    settings: Settings
    backend: str
    stack: LocalStack | None = None
    extras: dict = field(default_factory=dict)


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False


def choose_backend(requested: str) -> str:
    if requested != "auto":
        return requested
    return "testcontainers" if docker_answers() else "local"


def local_settings(data_dir: Path, **overrides) -> Settings:
    """Settings for a private local stack: every port free, every file under data_dir."""
    ports = {
        "kafka_port": free_port(),
        "kafka_controller_port": free_port(),
        "cassandra_port": free_port(),
        "cassandra_storage_port": free_port(),
        "cassandra_ssl_storage_port": free_port(),
        "cassandra_jmx_port": free_port(),
        "spark_master_port": free_port(),
        "spark_master_webui_port": free_port(),
        "spark_worker_webui_port": free_port(),
    }
    base = Settings(_env_file=None)
    values = {
        "data_dir": data_dir,
        "jars_dir": base.jars_dir,  # the resolved jars are shared, never re-downloaded
        "kafka_topic": "clickstream-test",
        "cassandra_keyspace": "clickstream_test",
        "cassandra_heap": "512m",
        "kafka_heap": "512m",
        **ports,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@contextlib.contextmanager
def local_backend(data_dir: Path, components=("kafka", "cassandra")) -> Iterator[Endpoints]:
    settings = local_settings(data_dir)
    stack = LocalStack(settings, components, echo=log.info)
    stack.up(die_with_parent=True)  # gone with pytest, even if it is killed
    try:
        yield Endpoints(settings, "local", stack)
    finally:
        stack.down()


@contextlib.contextmanager
def testcontainers_backend(data_dir: Path) -> Iterator[Endpoints]:
    from testcontainers.cassandra import CassandraContainer
    from testcontainers.kafka import KafkaContainer

    from services.stack.schema import apply_cassandra_schema, apply_kafka_schema

    kafka_container = KafkaContainer(KAFKA_IMAGE).with_kraft()
    with kafka_container as kafka, CassandraContainer(CASSANDRA_IMAGE) as cass:
        host, port = cass.get_contact_points()[0]
        base = Settings(_env_file=None)
        settings = Settings(
            _env_file=None,
            data_dir=data_dir,
            jars_dir=base.jars_dir,
            kafka_bootstrap=kafka.get_bootstrap_server(),
            cassandra_hosts=host,
            cassandra_port=port,
            kafka_topic="clickstream-test",
            cassandra_keyspace="clickstream_test",
        )
        apply_kafka_schema(settings)
        apply_cassandra_schema(settings)
        yield Endpoints(settings, "testcontainers")
