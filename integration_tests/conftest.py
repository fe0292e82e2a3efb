"""Session fixtures: real Kafka + Cassandra (+ Spark) for the integration tests.

`stack` gives an `Endpoints` whose `.settings` points at running servers with the topic,
keyspace and tables created. The backend is chosen by CLICKSTREAM_TEST_BACKEND
(auto | local | testcontainers; auto = testcontainers when DOCKER_HOST answers).

Nothing outlives the run: every fixture that starts a server stops it in a finalizer, which
pytest runs on success, failure, timeout and Ctrl-C -- and here on SIGTERM and SIGHUP too,
which take Ctrl-C's path. The servers of the session fixtures get SIGTERM from the kernel if
pytest dies without its finalizers (SIGKILL). The last finalizer asserts that no process or
port of the run is left.
"""

from __future__ import annotations

import os
import signal
import sys

import psutil
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
from integration_tests.helpers import cmdline, kill_tree, processes_using
from services.stack import engine, images
from services.stack.stack import LocalStack
from shared import signals
from shared.errors import ClickstreamError
from shared.settings import Settings

# The user's engine, read before the `docker_host` fixture may point DOCKER_HOST at ours.
USER_DOCKER_HOST = os.environ.get("DOCKER_HOST")


def pytest_configure(config):
    # The tests check what commands do on SIGHUP: a run started under nohup (SIGHUP
    # ignored, which children inherit and `signals` respects) must not change that.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signals.install()  # SIGTERM / SIGHUP: pytest's Ctrl-C path, so finalizers run


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(tmp_path_factory):
    """Set up first, so torn down last: after every other fixture has stopped its servers,
    no process started by this run may live on, and no port may be held by one. The run's
    processes: pytest's descendants, and every process whose command line or
    CLICKSTREAM_DATA_DIR names the run's temp folder (servers that `clickstream up` left
    re-parented to init, for one). Not a subreaper instead: pytest would not reap the
    orphans, and their zombies look alive to `pid_exists` and to `down`'s wait."""
    base = tmp_path_factory.getbasetemp()
    yield
    helpers = _lives_with_pytest()
    me = psutil.Process()

    def ours() -> list[psutil.Process]:
        procs = {p.pid: p for p in processes_using(base)}
        for p in me.children(recursive=True):
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    procs[p.pid] = p
            except psutil.NoSuchProcess:
                pass
        return [p for pid, p in procs.items() if pid not in helpers]

    left = ours()
    if left:  # still exiting after their SIGTERM? give them a bounded time
        psutil.wait_procs(left, timeout=30)
        left = ours()
    pids = {me.pid} | {p.pid for p in left}
    ports = sorted({f"{c.laddr.port} (pid {c.pid})" for c in psutil.net_connections("tcp")
                    if c.status == psutil.CONN_LISTEN and c.pid in pids})
    described = [f"pid {p.pid}: {line[:200]}" for p in left if (line := cmdline(p))]
    for p in left:
        kill_tree(p)  # leave nothing behind, even when this check fails
    assert not described and not ports, (
        "the test run left processes or ports behind:\n" + "\n".join(described)
        + (f"\nlistening: {', '.join(ports)}" if ports else ""))


def _lives_with_pytest() -> set[int]:
    """Helpers that live as long as this Python process and exit with it, so are no leak:
    the JVM behind an in-process SparkSession (it exits when its stdin closes) and
    multiprocessing's resource tracker (when its pipe closes)."""
    pids = set()
    context = sys.modules.get("pyspark.context")
    gateway = getattr(getattr(context, "SparkContext", None), "_gateway", None)
    if (proc := getattr(gateway, "proc", None)) is not None:
        pids.add(proc.pid)
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is not None and (pid := getattr(tracker._resource_tracker, "_pid", None)):
        pids.add(pid)
    for pid in list(pids):
        try:
            pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return pids


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
    spark.up(schema=False, die_with_parent=True)
    try:
        yield settings
    finally:
        spark.down()


@pytest.fixture
def private_settings(tmp_path):
    """Settings for a private, not-yet-started local stack (fault tests start their own).
    Whatever the test leaves running under it is stopped afterwards, pass or fail."""
    settings = local_settings(tmp_path / "stack")
    yield settings
    LocalStack(settings).down()  # the servers, by their pid files
    for p in processes_using(settings.data_dir):  # anything else, e.g. a demo's child
        kill_tree(p)
