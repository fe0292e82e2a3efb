"""The one way to build a SparkSession: local jars, loopback binding, quiet logs,
every folder under the project's data folder.

Used by the processor (stream and batch) and by the tests. The Kafka source and the
Cassandra connector come from `.stack/jars/spark` (resolved by `clickstream setup`),
never from `spark.jars.packages` at run time.
"""

from __future__ import annotations

import os
import re
import socket

from shared.errors import ClickstreamError
from shared.settings import Settings
from shared.spark_env import prepare_spark_env, spark_jars

#: SQL settings of every session the job runs in (and the tests' session).
#: Constraint propagation infers, for every projection, the constraints of every alias in
#: it; over the job's tagged rows (10 structs of 17 fields) that took 2.6-3 s of the
#: planning of EVERY micro-batch with data (52 of 59 stack samples of a tiny batch's
#: planning were in `getAllValidConstraints`), for filters the job does not need.
#: A limit's collect (a live micro-batch's rows, `local_rows.collect_reduced`) scans up to
#: this many partitions in its first job, in parallel; by default it scans one, then the
#: rest in a second job, one after the other (~0.25 s more per micro-batch on 2 cores).
#: A micro-batch without new data that only moves the watermark (after the last data of an
#: available-now run, or when a live topic goes quiet) scans every state store for keys to
#: evict and writes nothing (update mode); without it, the next micro-batch with data evicts
#: them in the scan it makes anyway. It was 3.7-6.6 s of a 1M-event catch-up's 29-43 s.
SQL_CONF = {"spark.sql.constraintPropagation.enabled": "false",
            "spark.sql.limit.initialNumPartitions": "1024",
            "spark.sql.streaming.noDataMicroBatches.enabled": "false"}


LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CLUSTER_SHUFFLE_PARTITIONS = 4


def shuffle_partitions(master: str, configured: int | None = None) -> int:
    """One shuffle partition per core of a local master (every stage one wave of tasks),
    unless configured. Measured on 2 cores (2026-12-03, local[*]): 2 partitions instead of
    4 made a 10-record micro-batch 18% faster (median 6.1 vs 7.4 s, three runs each) and a
    300k-event catch-up 5-20% faster (ratio to read+parse 0.37/0.41 vs 0.33/0.34): each
    stateful stage commits one state store per partition. A cluster keeps 4 unless set."""
    if configured:
        return configured
    if master == "local":
        return 1
    m = re.fullmatch(r"local\[(\d+|\*)(?:,\s*\d+)?\]", master)
    if m:
        return (os.cpu_count() or 1) if m.group(1) == "*" else int(m.group(1))
    return CLUSTER_SHUFFLE_PARTITIONS


def driver_host(master: str, configured: str | None = None) -> str:
    """The address executors reach the driver at. Loopback for `local[...]` and a master
    on this machine (nothing listens beyond it); for a remote master, this machine's
    address on the route to it, so that its workers' executors can connect back."""
    if configured:
        return configured
    if not master.startswith("spark://"):
        return "127.0.0.1"
    first = master.removeprefix("spark://").split(",")[0]
    host, _, port = first.rpartition(":") if ":" in first else (first, "", "7077")
    if host in LOOPBACK:
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # sends nothing
            s.connect((host, int(port or 7077)))
            return s.getsockname()[0]
    except OSError as e:
        raise ClickstreamError(
            f"no route to the Spark master {host} ({e.strerror}): set "
            f"CLICKSTREAM_SPARK_DRIVER_HOST to this machine's address its workers can reach"
        ) from None


#: the driver's heap unless CLICKSTREAM_SPARK_DRIVER_MEMORY says otherwise. The batch job
#: caches a whole input's distinct events: 1g died of OutOfMemoryError at 10.2M events. The
#: streaming job holds one micro-batch: with 2g its RSS grew to 2.5 GB within 5 minutes at
#: 5k events/s, against 1.68 GB with 1g (2026-12-04, one 5-minute run each).
DRIVER_MEMORY = "1g"
BATCH_DRIVER_MEMORY = "2g"


def build_session(settings: Settings, app_name: str = "clickstream", master: str | None = None,
                  driver_memory: str = DRIVER_MEMORY):
    """A SparkSession configured for this project. Call `.stop()` when done.
    `driver_memory`: the heap when the settings leave it unset."""
    master = master or settings.spark_master
    driver = driver_host(master, settings.spark_driver_host)
    os.environ.update(prepare_spark_env(settings))
    os.environ["SPARK_LOCAL_IP"] = driver
    from pyspark.sql import SparkSession

    warehouse = settings.data_dir / "spark" / "warehouse"
    host = settings.cassandra_contact_points
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.jars", ",".join(str(j) for j in spark_jars(settings)))
        .config("spark.driver.memory", settings.spark_driver_memory or driver_memory)
        .config("spark.driver.bindAddress", driver)
        .config("spark.driver.host", driver)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions",
                str(shuffle_partitions(master, settings.spark_shuffle_partitions)))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.cassandra.connection.host", ",".join(host))
        .config("spark.cassandra.connection.port", str(settings.cassandra_port))
        .config("spark.sql.extensions", "com.datastax.spark.connector.CassandraSparkExtensions")
        # keep the connector's Cassandra session open between micro-batches (default 5 s):
        # reopening it fetches the cluster's schema again, seconds of every tiny batch
        .config("spark.cassandra.connection.keepAliveMS", "600000")
        # the connector groups rows by partition key (every table here is one partition
        # per day) into unlogged batches of at most 1 KiB by default, ~10 rows: 64 KiB
        # batches halve the JVM CPU of writing a micro-batch (README "Benchmarks").
        # Single-partition batches are exempt from Cassandra's batch size warn/fail limits.
        .config("spark.cassandra.output.batch.size.bytes", str(64 * 1024))
        .config("spark.cassandra.output.batch.grouping.buffer.size", "10000")
        .config(map=SQL_CONF)
    )
    if settings.cassandra_username:
        builder = builder.config("spark.cassandra.auth.username", settings.cassandra_username)
    if settings.cassandra_password:
        builder = builder.config(
            "spark.cassandra.auth.password", settings.cassandra_password.get_secret_value()
        )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
