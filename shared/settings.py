"""All configuration in one place: environment variables prefixed `CLICKSTREAM_`,
an optional `.env` at the repo root, and defaults that run the local stack.

Nothing else in the project reads the environment. To point the pipeline at existing
clusters set e.g. `CLICKSTREAM_KAFKA_BOOTSTRAP=broker1:9092`,
`CLICKSTREAM_CASSANDRA_HOSTS=cass1,cass2`, `CLICKSTREAM_SPARK_MASTER=spark://host:7077`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLICKSTREAM_",
        env_file=REPO_ROOT / ".env",  # absolute: found whatever the working folder
        extra="ignore",  # the same .env may carry compose variables
    )

    # ---- where the local stack keeps jars, data, logs and pid files (git-ignored)
    data_dir: Path = REPO_ROOT / ".stack"
    jars_dir: Path = Field(REPO_ROOT / ".stack" / "jars", description="Maven-resolved server jars")
    java_home: Path | None = Field(
        None, description="JDK 11/17 for the servers; default: java on PATH")

    # ---- Kafka
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_bootstrap: str | None = Field(
        None, description="existing cluster; default: the local broker")
    kafka_topic: str = "clickstream"
    kafka_partitions: int = Field(3, ge=1)
    kafka_replication_factor: int = Field(1, ge=1)
    kafka_heap: str = "1g"

    # ---- Cassandra
    cassandra_host: str = "127.0.0.1"
    cassandra_port: int = 9042
    cassandra_storage_port: int = 7000
    cassandra_ssl_storage_port: int = 7001
    cassandra_jmx_port: int = 7199
    cassandra_hosts: str | None = Field(None, description="existing cluster, comma-separated")
    cassandra_keyspace: str = "clickstream"
    cassandra_replication_factor: int = Field(1, ge=1)
    cassandra_username: str | None = None
    cassandra_password: SecretStr | None = None
    cassandra_heap: str = "768m"

    # ---- Spark
    spark_master: str = "local[*]"
    spark_master_port: int = 7077
    spark_master_webui_port: int = 8080
    spark_worker_webui_port: int = 8081
    spark_worker_cores: int = Field(1, ge=1)
    spark_worker_memory: str = "1g"
    spark_shuffle_partitions: int | None = Field(
        None, ge=1, description="spark.sql.shuffle.partitions; default: the cores of a local "
                                "master (local[N] -> N, local[*] -> this machine's), else 4")
    spark_driver_memory: str | None = Field(
        None, description="heap of the job's driver (also the executor of a local master); "
                          "default: 2g for the batch job, 1g for the others")
    spark_driver_host: str | None = Field(
        None, description="the address the job's executors reach its driver at (it binds "
                          "there too); default: 127.0.0.1 for a local master, else this "
                          "machine's address on the route to the master")

    # ---- dashboard
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 5006
    dashboard_refresh_seconds: float = Field(5.0, gt=0)

    # ---- tests: which servers the integration fixtures use (auto: Docker if it answers)
    test_backend: str = Field("auto", pattern="^(auto|local|testcontainers)$")
    test_hold_fifo: Path | None = Field(
        None, description="tests only: `up` waits on this FIFO once its servers are launched, "
                          "so a test can signal it at that step")

    # ---- processor (the Spark job, services/processor) -- appended by the processor work
    processor_trigger_seconds: float = Field(5.0, gt=0, description="micro-batch interval")
    processor_watermark_seconds: int = Field(
        600, ge=0, description="how late an event may arrive and still be counted")
    processor_checkpoint_dir: Path | None = Field(
        None, description="streaming checkpoints; default: <data_dir>/checkpoints/processor")
    processor_max_offsets_per_trigger: int = Field(
        1_000_000, ge=1, description="Kafka records per micro-batch at most: a catch-up's "
                                     "micro-batch size (a live one holds what arrived)")
    processor_starting_offsets: str = Field("earliest", pattern="^(earliest|latest)$")
    processor_write_timeout_seconds: float = Field(
        300.0, gt=0, description="a micro-batch whose Cassandra writes take longer fails "
                                 "(the job exits, resumable), instead of waiting forever")
    processor_local_rows: int = Field(
        20000, ge=0, description="a micro-batch of at most this many updated rows is written "
                                "from the driver with prepared CQL statements instead of one "
                                "Spark job per table (0: always the Spark connector)")

    # ---- derived
    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def cassandra_contact_points(self) -> list[str]:
        if self.cassandra_hosts:
            return [h.strip() for h in self.cassandra_hosts.split(",") if h.strip()]
        return [self.cassandra_host]

    @property
    def spark_standalone_url(self) -> str:
        return f"spark://127.0.0.1:{self.spark_master_port}"


def env_var(name: str) -> str:
    """The environment variable of the setting `name` (`kafka_port` -> CLICKSTREAM_KAFKA_PORT)."""
    return f"{Settings.model_config['env_prefix']}{name.upper()}"


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment without its CLICKSTREAM_ variables, plus every setting
    as one: the environment of a child `clickstream` process that must see exactly
    `settings` (tests, benchmarks)."""
    import os

    prefix = Settings.model_config["env_prefix"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[env_var(name)] = str(value)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings(...)` instead)."""
    return Settings()
