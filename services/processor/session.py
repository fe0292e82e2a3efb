"""The one way to build a SparkSession: local jars, loopback binding, quiet logs,
every folder under the project's data folder.

Used by the processor (stream and batch) and by the tests. The Kafka source and the
Cassandra connector come from `.stack/jars/spark` (resolved by `clickstream setup`),
never from `spark.jars.packages` at run time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from services.errors import ClickstreamError
from shared.settings import Settings

CONF_DIR = Path(__file__).resolve().parent.parent / "stack" / "conf"


def spark_jars(settings: Settings) -> list[Path]:
    jars = sorted((settings.jars_dir / "spark").glob("*.jar"))
    if not jars:
        raise ClickstreamError(
            f"no Spark connector jars in {settings.jars_dir / 'spark'}: run `make setup`"
        )
    return jars


def prepare_spark_env(settings: Settings) -> dict[str, str]:
    """Environment for any Spark JVM we launch (driver, master, worker)."""
    scratch = settings.data_dir / "spark" / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    conf_dir = settings.data_dir / "spark" / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "log4j2.properties").write_text((CONF_DIR / "spark-log4j2.properties").read_text())
    env = {
        "SPARK_LOCAL_IP": "127.0.0.1",  # else Spark binds the machine's external address
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_DIRS": str(scratch),
        "SPARK_CONF_DIR": str(conf_dir),
    }
    if settings.java_home:
        env["JAVA_HOME"] = str(settings.java_home)
    return env


def build_session(settings: Settings, app_name: str = "clickstream", master: str | None = None):
    """A SparkSession configured for this project. Call `.stop()` when done."""
    os.environ.update(prepare_spark_env(settings))
    from pyspark.sql import SparkSession

    master = master or settings.spark_master
    warehouse = settings.data_dir / "spark" / "warehouse"
    host = settings.cassandra_contact_points
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.jars", ",".join(str(j) for j in spark_jars(settings)))
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.cassandra.connection.host", ",".join(host))
        .config("spark.cassandra.connection.port", str(settings.cassandra_port))
        .config("spark.sql.extensions", "com.datastax.spark.connector.CassandraSparkExtensions")
        # keep the connector's Cassandra session open between micro-batches (default 5 s):
        # reopening it fetches the cluster's schema again, seconds of every tiny batch
        .config("spark.cassandra.connection.keepAliveMS", "600000")
    )
    if settings.cassandra_username:
        builder = builder.config("spark.cassandra.auth.username", settings.cassandra_username)
    if settings.cassandra_password:
        builder = builder.config(
            "spark.cassandra.auth.password", settings.cassandra_password.get_secret_value()
        )
    from services.processor.aggregates import OBJECT_HASH_CONF

    for key, value in OBJECT_HASH_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
