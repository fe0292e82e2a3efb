"""The Spark environment every Spark JVM of the project gets (the job's driver, the
local stack's master and worker): local connector jars, loopback binding, logs and scratch
folders under the project's data folder. Shared, so that the stack does not import the
processor."""

from __future__ import annotations

import sys
from pathlib import Path

from shared.errors import ClickstreamError
from shared.settings import Settings

CONF_DIR = Path(__file__).resolve().parent / "conf"


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
