"""Session fixtures: real Kafka + Cassandra (+ Spark) for the integration tests.

`stack` gives an `Endpoints` whose `.settings` points at running servers with the topic,
keyspace and tables created. The backend is chosen by CLICKSTREAM_TEST_BACKEND
(auto | local | testcontainers; auto = testcontainers when a Docker engine answers).
"""

from __future__ import annotations

import pytest

from integration_tests.backends import (
    choose_backend,
    local_backend,
    local_settings,
    testcontainers_backend,
)
from services.stack.stack import LocalStack
from shared.settings import Settings


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration_tests" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    backend = choose_backend(Settings(_env_file=None).test_backend)
    data_dir = tmp_path_factory.mktemp("stack")
    if backend == "local":
        with local_backend(data_dir) as endpoints:
            yield endpoints
    else:
        with testcontainers_backend(data_dir) as endpoints:
            yield endpoints


@pytest.fixture(scope="session")
def spark_cluster(stack, tmp_path_factory):
    """A standalone Spark master + worker (always local processes: the pip install's own)."""
    s = stack.settings
    cluster_settings = local_settings(tmp_path_factory.mktemp("spark"))
    settings = s.model_copy(update={
        "spark_master_port": cluster_settings.spark_master_port,
        "spark_master_webui_port": cluster_settings.spark_master_webui_port,
        "spark_worker_webui_port": cluster_settings.spark_worker_webui_port,
        "data_dir": cluster_settings.data_dir,
    })
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
