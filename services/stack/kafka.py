"""Kafka 4.x in KRaft mode, single node (broker + controller in one JVM), on loopback."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from services.stack.server import Server
from shared.errors import ClickstreamError

# -Xms whatever CLICKSTREAM_KAFKA_HEAP (-Xmx) says: an idle broker stays light and the heap
# grows under load
MIN_HEAP = "256m"

LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <!-- errors also reach stdout, i.e. .stack/logs/kafka.log -->
    <Logger name="kafka.server.KafkaServer" level="INFO" additivity="true">
      <AppenderRef ref="stdout" level="ERROR"/>
    </Logger>
  </Loggers>
</Configuration>
"""


class Kafka(Server):
    name = "kafka"
    start_timeout = 60.0
    port_settings = ("kafka_port", "kafka_controller_port")

    @property
    def endpoint(self) -> str:
        return f"{self.settings.kafka_host}:{self.settings.kafka_port}"

    @property
    def own_log(self) -> Path:
        return self.home / "logs" / "server.log"  # -Dkafka.logs.dir, see command()

    @property
    def config_file(self):
        return self.home / "server.properties"

    def properties(self, bind_host: str | None = None) -> str:
        """server.properties; `bind_host` (e.g. 0.0.0.0 in a container) only widens where
        the client listener binds, the controller and the advertised address stay on host."""
        s = self.settings
        host, port, ctrl = s.kafka_host, s.kafka_port, s.kafka_controller_port
        bind = bind_host or host
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={host}:{ctrl}",
            f"listeners=PLAINTEXT://{bind}:{port},CONTROLLER://{host}:{ctrl}",
            f"advertised.listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.home / 'data'}",
            f"num.partitions={s.kafka_partitions}",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.hours=168",
            "",
        ])

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        self.config_file.write_text(self.properties())
        (self.home / "log4j2.xml").write_text(LOG4J2)
        if (self.home / "data" / "meta.properties").exists():
            return  # formatted once; data survives down/up
        out = subprocess.run(self.format_command(self._cluster_id()),
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise ClickstreamError(f"kafka: formatting storage failed: {out.stderr.strip()[-500:]}")

    def format_command(self, cluster_id: str) -> list[str]:
        """Formats the KRaft storage once (`--ignore-formatted` makes it re-runnable)."""
        # `=`: an id may start with "-", which the tool would take for an option
        return [self.java, "-cp", f"{self.jars}/*", "kafka.tools.StorageTool", "format",
                f"--cluster-id={cluster_id}", "-c", str(self.config_file), "--standalone",
                "--ignore-formatted"]

    def _cluster_id(self) -> str:
        f = self.home / "cluster.id"
        if not f.exists():
            # The same 22-char base64 form `kafka-storage random-uuid` prints.
            import base64

            f.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        return f.read_text().strip()

    def command(self):
        heap = self.settings.kafka_heap
        return [
            self.java, f"-Xms{MIN_HEAP}", f"-Xmx{heap}",
            "-XX:+UseG1GC", "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", f"{self.jars}/*", "kafka.Kafka", str(self.config_file),
        ], {}

    def check(self) -> None:
        from kafka import KafkaAdminClient

        from shared.clients.ports import is_listening

        # kafka-python logs every refused connection loudly: only ask once the port accepts
        if not is_listening(self.settings.kafka_port, self.settings.kafka_host):
            raise ConnectionRefusedError(f"nothing listens on {self.endpoint} yet")

        admin = KafkaAdminClient(bootstrap_servers=self.endpoint, request_timeout_ms=3000,
                                 client_id="clickstream-ready")
        try:
            admin.list_topics()
        finally:
            admin.close()


def ensure_topic(bootstrap: str, topic: str, partitions: int, replication: int = 1) -> bool:
    """Create the topic if missing. True if created now."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                             client_id="clickstream-schema")
    try:
        if topic in admin.list_topics():
            return False
        try:
            admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                          replication_factor=replication)])
        except TopicAlreadyExistsError:
            return False
        return True
    finally:
        admin.close()
