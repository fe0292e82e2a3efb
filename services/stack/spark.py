"""An optional Spark standalone master + worker from the pyspark install (cluster mode).

`local[*]` needs none of this; start it with `clickstream up --only spark` and submit
with `--master spark://127.0.0.1:7077`.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from services.stack.server import Server
from shared.spark_env import prepare_spark_env


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _ui_json(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/", timeout=2) as r:
        return json.loads(r.read())


class _SparkDaemon(Server):
    start_timeout = 60.0

    @property
    def jars(self) -> Path:  # the pyspark install brings its own jars
        return spark_home() / "jars"

    def require_jars(self) -> None:
        pass

    def _cmd(self, klass: str, *args: str):
        env = prepare_spark_env(self.settings)
        env["SPARK_HOME"] = str(spark_home())
        env["SPARK_LOG_DIR"] = str(self.home / "logs")
        env["SPARK_WORKER_DIR"] = str(self.home / "work")
        env["SPARK_DAEMON_MEMORY"] = "512m"
        if self.java != "java":
            env["JAVA_HOME"] = str(Path(self.java).resolve().parent.parent)
        # spark-class execs java in place, so the pid file names the JVM itself
        return ["bash", str(spark_home() / "bin" / "spark-class"), klass, *args], env

    def prepare(self) -> None:
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        (self.home / "work").mkdir(parents=True, exist_ok=True)


class SparkMaster(_SparkDaemon):
    name = "spark-master"
    port_settings = ("spark_master_port", "spark_master_webui_port")

    @property
    def endpoint(self) -> str:
        return self.settings.spark_standalone_url

    @property
    def home(self) -> Path:
        return self.settings.data_dir / "spark"

    def command(self):
        s = self.settings
        return self._cmd("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                         "--port", str(s.spark_master_port),
                         "--webui-port", str(s.spark_master_webui_port))

    def check(self) -> None:
        state = _ui_json(self.settings.spark_master_webui_port)
        if state.get("status") != "ALIVE":
            raise RuntimeError(f"master status {state.get('status')}")


class SparkWorker(_SparkDaemon):
    name = "spark-worker"
    port_settings = ("spark_worker_webui_port",)

    @property
    def endpoint(self) -> str:
        return f"worker of {self.settings.spark_standalone_url}"

    @property
    def home(self) -> Path:
        return self.settings.data_dir / "spark"

    def command(self):
        s = self.settings
        return self._cmd("org.apache.spark.deploy.worker.Worker", s.spark_standalone_url,
                         "--host", "127.0.0.1", "--cores", str(s.spark_worker_cores),
                         "--memory", s.spark_worker_memory,
                         "--webui-port", str(s.spark_worker_webui_port),
                         "--work-dir", str(self.home / "work"))

    def check(self) -> None:
        """Ready when the master lists this worker as ALIVE."""
        state = _ui_json(self.settings.spark_master_webui_port)
        alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
        if not alive:
            raise RuntimeError("no ALIVE worker registered with the master yet")
