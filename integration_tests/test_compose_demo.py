"""Compose for real: the `demo` profile of compose/docker-compose.yml, on the project's own
images, with Debian's docker-compose 1.29. Events reach Cassandra, the dashboard answers on
127.0.0.1, and `down -v` leaves no container, network or volume of the project behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
import uuid

import pytest

from integration_tests.helpers import REPO
from services.stack import engine, images
from services.stack.readiness import wait_until
from shared.clients.cassandra import connect
from shared.clients.ports import free_port
from shared.settings import Settings

COMPOSE_FILE = REPO / "compose" / "docker-compose.yml"


def _compose_binary() -> str:
    if not shutil.which("docker-compose"):
        engine.ensure_packages("docker-compose")
    return shutil.which("docker-compose")


def _events_in_cassandra(settings: Settings) -> int:
    """Events the streaming job has read and committed, and at least one aggregate row."""
    cluster, session = connect(settings, keyspace=settings.cassandra_keyspace, timeout=5)
    try:
        read = sum(r.input_rows for r in session.execute("SELECT input_rows FROM ingest_quality"))
        views = session.execute("SELECT page FROM time_agg LIMIT 1").one()
    finally:
        cluster.shutdown()
    if not read or views is None:
        raise AssertionError(f"not yet: {read} events read, time_agg row: {views}")
    return read


def _project_leftovers(docker_host: str, project: str) -> list[str]:
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=30)
    label = {"label": f"com.docker.compose.project={project}"}
    try:
        return ([f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
                + [f"network {n.name}" for n in client.networks.list(filters=label)]
                + [f"volume {v.name}" for v in client.volumes.list(filters=label)])
    finally:
        client.close()


@pytest.mark.timeout(2400)
def test_compose_demo_profile_up_events_reach_cassandra_dashboard_answers_then_down(
        docker_host):
    base = Settings(_env_file=None)
    images.build_all(base, docker_host, make_base=False, only=["app"])
    ports = {"CLICKSTREAM_KAFKA_PORT": free_port(), "CLICKSTREAM_CASSANDRA_PORT": free_port(),
             "CLICKSTREAM_DASHBOARD_PORT": free_port()}
    env = {**os.environ, "DOCKER_HOST": docker_host, **{k: str(v) for k, v in ports.items()}}
    project = f"clickstream-test-{uuid.uuid4().hex[:8]}"
    compose = [_compose_binary(), "-f", str(COMPOSE_FILE), "-p", project, "--profile", "demo"]

    def run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([*compose, *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    try:
        # `up -d` returns once the servers are healthy and the schema step has succeeded
        up = run("up", "-d", "--no-build")
        assert up.returncode == 0, up.stderr[-3000:]
        settings = Settings(_env_file=None, cassandra_port=ports["CLICKSTREAM_CASSANDRA_PORT"])
        try:
            read = wait_until(lambda: _events_in_cassandra(settings), 1200,
                              "events in Cassandra through compose", interval=5)
        except Exception:
            print(run("logs", "--tail", "30").stdout[-6000:])
            raise
        assert read > 0
        dashboard = f"http://127.0.0.1:{ports['CLICKSTREAM_DASHBOARD_PORT']}"
        wait_until(lambda: urllib.request.urlopen(f"{dashboard}/liveness", timeout=5), 300,
                   f"the dashboard at {dashboard}", interval=2)
        with urllib.request.urlopen(f"{dashboard}/", timeout=60) as page:
            assert page.status == 200
            assert "bokeh" in page.read().decode("utf-8", "replace").lower()
    finally:
        down = run("down", "-v", "--remove-orphans", timeout=300)
    assert down.returncode == 0, down.stderr[-3000:]
    assert _project_leftovers(docker_host, project) == []
