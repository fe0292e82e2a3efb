"""Where the integration tests get real servers from: the local stack (JVM processes on
free ports in a temp folder) or testcontainers (where a Docker engine answers).

Both give the tests the same thing: a `Settings` pointing at running servers whose
topic, keyspace and tables exist. The tests never know which backend is behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from services.stack import engine, images
from services.stack.cassandra import Cassandra
from services.stack.kafka import Kafka
from services.stack.readiness import wait_until
from services.stack.schema import apply_cassandra_schema, apply_kafka_schema
from services.stack.spark import SparkMaster, SparkWorker
from services.stack.stack import PORT_SETTINGS, LocalStack
from shared.clients.ports import free_port
from shared.errors import ClickstreamError
from shared.settings import Settings

log = logging.getLogger(__name__)

@dataclass
class Endpoints:
    settings: Settings
    backend: str
    stack: LocalStack | None = None
    extras: dict = field(default_factory=dict)


def choose_backend(requested: str, docker_host: str | None) -> str:
    """auto: testcontainers when the user's DOCKER_HOST names an engine that answers, else
    local. (A private engine is started only when testcontainers is asked for by name.)"""
    if requested != "auto":
        return requested
    return "testcontainers" if docker_host and engine.answers(docker_host) else "local"


def local_settings(data_dir: Path, **overrides) -> Settings:
    """Settings for a private local stack: every port free, every file under data_dir."""
    ports = {name: free_port() for name in PORT_SETTINGS}
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


# ------------------------------------------------------------------ testcontainers
@contextlib.contextmanager
def testcontainers_env(docker_host: str) -> Iterator[None]:
    """What testcontainers needs here: our engine, no Ryuk (it would pull its image from a
    registry), and mapped ports read from the engine (this machine has a /.dockerenv)."""
    wanted = {"DOCKER_HOST": docker_host, "TESTCONTAINERS_RYUK_DISABLED": "true",
              "TESTCONTAINERS_CONNECTION_MODE": "docker_host"}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def remove_session_containers(docker_host: str) -> list[str]:
    """Remove every container this test session created (a failed start included)."""
    from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID

    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=60)
    try:
        found = client.containers.list(all=True,
                                       filters={"label": f"{LABEL_SESSION_ID}={SESSION_ID}"})
        for c in found:
            c.remove(force=True, v=True)
        return [c.name for c in found]
    finally:
        client.close()


def _publish_on_loopback(container, port: int) -> int:
    """Publish `port` on 127.0.0.1 only, on a free host port chosen now (testcontainers'
    with_bind_ports would bind every interface). Returns the host port."""
    host_port = free_port()
    container.ports[f"{port}/tcp"] = ("127.0.0.1", host_port)
    return host_port


def wait_container(container, check, what: str, timeout: float) -> None:
    """Readiness by protocol from the host; a container that dies or never answers shows
    its last log lines."""
    def alive() -> bool:
        c = container.get_wrapped_container()
        c.reload()
        return c.status in ("created", "running")

    try:
        wait_until(check, timeout, what, alive=alive)
    except ClickstreamError as e:
        logs = container.get_wrapped_container().logs(tail=25).decode("utf-8", "replace")
        raise ClickstreamError(f"{e}\n--- last lines of container {what} ---\n{logs}") from None


@contextlib.contextmanager
def testcontainers_backend(data_dir: Path, network) -> Iterator[Endpoints]:
    """Kafka and Cassandra from the project's images, on a bridge network, each published on
    127.0.0.1 (Kafka advertises its published port)."""
    from testcontainers.core.container import DockerContainer

    kafka = DockerContainer(images.ref("kafka")).with_network(network)
    kafka_port = _publish_on_loopback(kafka, 9092)
    kafka.with_env("KAFKA_CFG_ADVERTISED_LISTENERS",
                   f"PLAINTEXT://127.0.0.1:{kafka_port},CONTROLLER://127.0.0.1:9093")
    cassandra = DockerContainer(images.ref("cassandra")).with_network(network)
    cassandra_port = _publish_on_loopback(cassandra, 9042)
    settings = local_settings(data_dir).model_copy(update={
        "kafka_port": kafka_port, "cassandra_port": cassandra_port})
    with kafka, cassandra:  # started side by side, removed on the way out
        wait_container(kafka, Kafka(settings).check, f"kafka at {settings.bootstrap_servers}",
                       Kafka.start_timeout)
        wait_container(cassandra, Cassandra(settings).check,
                       f"cassandra at 127.0.0.1:{cassandra_port}", Cassandra.start_timeout)
        apply_kafka_schema(settings)
        apply_cassandra_schema(settings)
        yield Endpoints(settings, "testcontainers")


@contextlib.contextmanager
def spark_containers(settings: Settings, shared_dir: Path) -> Iterator[None]:
    """A standalone master + worker in containers on the host's network: the driver is
    the test process, bound to 127.0.0.1, and executors must reach it there (a bridge
    container's 127.0.0.1 is its own). `shared_dir` is mounted at the same path, read-only,
    so executors read the same input files as the driver names; the driver's Python path
    runs the image's python3 there (PySpark's workers need the same minor version)."""
    from testcontainers.core.container import DockerContainer

    s = settings
    master = (
        DockerContainer(images.ref("spark"))
        .with_kwargs(network_mode="host")
        .with_envs(SPARK_ROLE="spark-master", SPARK_WEBUI_PORT=str(s.spark_master_webui_port))
        .with_command(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                       "--port", str(s.spark_master_port),
                       "--webui-port", str(s.spark_master_webui_port)])
    )
    worker = (
        DockerContainer(images.ref("spark"))
        .with_kwargs(network_mode="host")
        .with_envs(SPARK_ROLE="spark-worker", SPARK_WEBUI_PORT=str(s.spark_worker_webui_port),
                   # executors run the Python the driver names: the venv's, here python3
                   PYTHON_ALIASES=sys.executable)
        .with_volume_mapping(str(shared_dir), str(shared_dir), mode="ro")
        .with_command(["org.apache.spark.deploy.worker.Worker", s.spark_standalone_url,
                       "--host", "127.0.0.1", "--cores", str(s.spark_worker_cores),
                       "--memory", s.spark_worker_memory,
                       "--webui-port", str(s.spark_worker_webui_port),
                       "--work-dir", "/tmp/spark-work"])
    )
    with master:
        wait_container(master, SparkMaster(s).check, f"spark-master at {s.spark_standalone_url}",
                       SparkMaster.start_timeout)
        with worker:  # after the master answers, or its first registration fails
            wait_container(worker, SparkWorker(s).check, "spark-worker",
                           SparkWorker.start_timeout)
            yield
