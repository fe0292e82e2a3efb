"""The local stack: start, stop and inspect real Kafka, Cassandra and Spark processes.

    stack = LocalStack(settings, only=["kafka", "cassandra"])
    stack.up()      # no-op for what already runs; schema step afterwards
    stack.down()

Used by `clickstream up/down/status` and by the integration-test fixtures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from services.stack.cassandra import Cassandra
from services.stack.java import check_java
from services.stack.kafka import Kafka
from services.stack.schema import apply_cassandra_schema, apply_kafka_schema
from services.stack.server import Server, Status
from services.stack.spark import SparkMaster, SparkWorker
from shared import signals
from shared.errors import ClickstreamError
from shared.settings import Settings

log = logging.getLogger(__name__)

# The components of the stack, in start order, and the servers each runs: the one list
# the CLI, the jars, the images and the pipeline take theirs from.
SERVERS: dict[str, tuple[type[Server], ...]] = {
    "kafka": (Kafka,),
    "cassandra": (Cassandra,),
    "spark": (SparkMaster, SparkWorker),
}
COMPONENTS = tuple(SERVERS)
# What `up` starts without --only, and all the pipeline needs: its Spark job runs a master
# of its own (local[*]) unless CLICKSTREAM_SPARK_MASTER names one.
DEFAULT = ("kafka", "cassandra")
SERVER_NAMES = tuple(cls.name for classes in SERVERS.values() for cls in classes)
# the settings of every port a local server binds (all must be free to start it)
PORT_SETTINGS = tuple(
    name for classes in SERVERS.values() for cls in classes for name in cls.port_settings)


def parse_only(text: str | None, default: Iterable[str] = DEFAULT) -> list[str]:
    if not text:
        return list(default)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise ClickstreamError(f"unknown component(s) {', '.join(unknown)}: "
                               f"choose from {', '.join(COMPONENTS)}")
    return [c for c in COMPONENTS if c in names]  # canonical order


class LocalStack:
    def __init__(self, settings: Settings, only: Iterable[str] = DEFAULT, echo=None):
        self.settings = settings
        self.only = list(only)
        self.echo = echo or (lambda msg: log.info(msg))

    def servers(self, names: Iterable[str] | None = None, java: str = "java") -> list[Server]:
        return [cls(self.settings, java)
                for name in (names if names is not None else self.only)
                for cls in SERVERS[name]]

    # ---------------------------------------------------------------- up
    def up(self, timeout: float | None = None, schema: bool = True,
           die_with_parent: bool = False) -> dict[str, float]:
        """Start what is requested and not running, wait for each to answer, then run the
        schema step. On any failure, Ctrl-C, SIGTERM or SIGHUP, stop what this call started
        (and let the KeyboardInterrupt through). With `die_with_parent`, the servers get
        SIGTERM when this process dies (the demo's and the tests' servers; not `up`'s,
        which outlive it)."""
        java = check_java(self.settings)
        started: list[Server] = []
        t0 = time.monotonic()
        ready_after: dict[str, float] = {}
        try:
            servers = self.servers(java=java)
            # Kafka and Cassandra start side by side; the Spark worker needs its master's UI.
            for s in servers:
                if isinstance(s, SparkWorker):
                    continue
                if s.launch(die_with_parent) is not None:
                    started.append(s)
                    self.echo(f"started {s.name} (pid {s.pidfile.pid()}), waiting for {s.endpoint}")
            self._test_hold()
            for s in servers:
                if isinstance(s, SparkWorker):
                    if s.launch(die_with_parent) is not None:
                        started.append(s)
                s.wait_ready(timeout)
                ready_after[s.name] = time.monotonic() - t0
                self.echo(f"{s.name} ready at {s.endpoint} ({ready_after[s.name]:.1f}s)")
            if schema:
                self.schema()
            signals.check()  # a signal whose KeyboardInterrupt a client library swallowed
        except BaseException:  # failures, and the KeyboardInterrupt of any stop signal
            self._rollback(started)
            raise
        return ready_after

    def _test_hold(self) -> None:
        """The tests' hook (CLICKSTREAM_TEST_HOLD_FIFO): with every server launched and none
        ready yet, wait until the test has opened the FIFO and closed it again, so that it
        can signal `up` at exactly this step."""
        fifo = self.settings.test_hold_fifo
        if fifo is not None:
            self.echo(f"holding at {fifo}")
            with open(fifo) as f:
                f.read()

    def schema(self) -> None:
        if "kafka" in self.only:
            apply_kafka_schema(self.settings)
            self.echo(f"topic {self.settings.kafka_topic} ready "
                      f"({self.settings.kafka_partitions} partitions)")
        if "cassandra" in self.only:
            n = apply_cassandra_schema(self.settings)
            self.echo(f"keyspace {self.settings.cassandra_keyspace} ready ({n} tables)")

    def _rollback(self, started: list[Server]) -> None:
        for s in reversed(started):
            try:
                s.stop()
                self.echo(f"stopped {s.name}")
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                log.warning("could not stop %s: %s", s.name, e)

    # ---------------------------------------------------------------- down / status
    def down(self) -> list[str]:
        """Stop every server of the stack that runs (whatever `only` says)."""
        stopped = []
        for s in reversed(self.servers(COMPONENTS)):
            if s.stop():
                stopped.append(s.name)
                self.echo(f"stopped {s.name}")
        return stopped

    def status(self, names: Iterable[str] | None = None) -> list[Status]:
        return [s.status() for s in self.servers(names)]
