"""Session fixtures: real Kafka + Cassandra (+ Spark) for the integration tests.

`stack` gives an `Endpoints` whose `.settings` points at running servers with the topic,
keyspace and tables created. The backend is chosen by CLICKSTREAM_TEST_BACKEND
(auto | local | testcontainers; auto = testcontainers when DOCKER_HOST answers).
"""

from __future__ import annotations

import os
import sys

import pytest

from integration_tests.backends import (
    choose_backend,
    local_backend,
    local_settings,
    remove_session_containers,
    spark_containers,
    testcontainers_backend,
    testcontainers_env,
)
from services.errors import ClickstreamError
from services.stack import engine, images
from services.stack.stack import LocalStack
from shared.settings import Settings

# The user's engine, read before the `docker_host` fixture may point DOCKER_HOST at ours.
USER_DOCKER_HOST = os.environ.get("DOCKER_HOST")


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration_tests" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker_host():
    """A Docker engine with the project's images built: DOCKER_HOST's, or this checkout's
    private dockerd (started now, stopped at the end). Every container the session
    created is removed, whatever happened."""
    base = Settings(_env_file=None)
    reason = engine.available(base)
    if reason:
        pytest.skip(reason)
    try:
        with engine.docker_engine(base) as host, testcontainers_env(host):
            try:
                images.build_all(base, host, make_base=host == engine.private_host(base),
                                 only=list(images.SERVER_IMAGES))
                yield host
            finally:
                remove_session_containers(host)
    except ClickstreamError as e:
        # the full error (a failed build's last lines) once; each test then names it briefly
        sys.__stderr__.write(f"\nerror: {e}\n")
        pytest.fail(f"no Docker engine or images: {str(e).splitlines()[0]}", pytrace=False)


@pytest.fixture(scope="session")
def stack(request, tmp_path_factory):
    base = Settings(_env_file=None)
    backend = choose_backend(base.test_backend, USER_DOCKER_HOST)
    data_dir = tmp_path_factory.mktemp("stack")
    if backend == "testcontainers" and engine.available(base):
        print(f"\nno testcontainers: {engine.available(base)}; using the local stack")
        backend = "local"
    if backend == "local":
        with local_backend(data_dir) as endpoints:
            yield endpoints
    else:
        request.getfixturevalue("docker_host")
        from testcontainers.core.network import Network

        with Network() as network, testcontainers_backend(data_dir, network) as endpoints:
            yield endpoints


@pytest.fixture(scope="session")
def spark_cluster(request, stack, tmp_path_factory):
    """A standalone Spark master + worker: local processes (the pip install's own), or
    containers of the Spark image beside the testcontainers backend."""
    s = stack.settings
    cluster_settings = local_settings(tmp_path_factory.mktemp("spark"))
    settings = s.model_copy(update={
        "spark_master_port": cluster_settings.spark_master_port,
        "spark_master_webui_port": cluster_settings.spark_master_webui_port,
        "spark_worker_webui_port": cluster_settings.spark_worker_webui_port,
        "data_dir": cluster_settings.data_dir,
    })
    if stack.backend == "testcontainers":
        request.getfixturevalue("docker_host")
        with spark_containers(settings, tmp_path_factory.getbasetemp()):
            yield settings
        return
    spark = LocalStack(settings, ["spark"])
    spark.up(schema=False)
    try:
        yield settings
    finally:
        spark.down()


@pytest.fixture
def private_settings(tmp_path):
    """Settings for a private, not-yet-started local stack (fault tests start their own)."""
    return local_settings(tmp_path / "stack")
