"""Cassandra 5.0, single node, on loopback, from the Maven jars (no tarball, no Docker)."""

from __future__ import annotations

import os
from pathlib import Path

from services.stack.server import Server

# From Cassandra's conf/jvm17-server.options: without these exports/opens Java 17 stops
# it with "FATAL: Cassandra is unable to access required classes".
JVM17_FLAGS = [
    "-Djdk.attach.allowAttachSelf=true",
    *[f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
        "java.rmi/sun.rmi.registry", "java.rmi/sun.rmi.server", "java.sql/java.sql",
        "java.base/java.lang.ref", "jdk.unsupported/sun.misc",
        "jdk.compiler/com.sun.tools.javac.file", "jdk.attach/sun.tools.attach",
    )],
    *[f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
        "java.base/jdk.internal.reflect", "java.base/jdk.internal.math",
        "java.base/jdk.internal.module", "java.base/jdk.internal.util.jar",
        "jdk.management/com.sun.management.internal", "java.base/sun.nio.ch", "java.base/java.io",
        "java.base/java.lang.reflect", "jdk.compiler/com.sun.tools.javac", "java.base/java.lang",
        "java.base/java.util",
    )],
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djava.net.preferIPv4Stack=true",
]

# logback 1.5: the time pattern must be quoted, or "SSS" is read as a time zone and
# logging is silently disabled.
LOGBACK = """<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>${cassandra.logdir}/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>${cassandra.logdir}/system.log.%i</fileNamePattern>
      <minIndex>1</minIndex><maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>20MB</maxFileSize>
    </triggeringPolicy>
    <encoder>
      <pattern>%-5level [%thread] %date{"yyyy-MM-dd HH:mm:ss,SSS"} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>%-5level %date{"HH:mm:ss,SSS"} %msg%n</pattern></encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE"/>
    <appender-ref ref="STDOUT"/>
  </root>
</configuration>
"""


class Cassandra(Server):
    name = "cassandra"
    start_timeout = 120.0
    port_settings = ("cassandra_port", "cassandra_storage_port", "cassandra_ssl_storage_port",
                     "cassandra_jmx_port")

    @property
    def endpoint(self) -> str:
        return f"{self.settings.cassandra_host}:{self.settings.cassandra_port}"

    @property
    def own_log(self) -> Path:
        return self.home / "logs" / "system.log"  # ${cassandra.logdir} in LOGBACK

    def yaml(self, rpc_address: str | None = None) -> str:
        """cassandra.yaml; `rpc_address` (e.g. 0.0.0.0 in a container) widens where CQL
        binds, and the node then announces `cassandra_host` to clients."""
        s, h = self.settings, self.home
        auth = s.cassandra_password is not None
        rpc = (f"rpc_address: {rpc_address}\nbroadcast_rpc_address: {s.cassandra_host}"
               if rpc_address else f"rpc_address: {s.cassandra_host}")
        return f"""\
cluster_name: clickstream
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
commitlog_sync: periodic
commitlog_sync_period: 10000ms
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{s.cassandra_host}:{s.cassandra_storage_port}"
endpoint_snitch: SimpleSnitch
listen_address: {s.cassandra_host}
{rpc}
storage_port: {s.cassandra_storage_port}
ssl_storage_port: {s.cassandra_ssl_storage_port}
native_transport_port: {s.cassandra_port}
data_file_directories: [{h / 'data'}]
commitlog_directory: {h / 'commitlog'}
saved_caches_directory: {h / 'saved_caches'}
hints_directory: {h / 'hints'}
cdc_raw_directory: {h / 'cdc_raw'}
authenticator: {'PasswordAuthenticator' if auth else 'AllowAllAuthenticator'}
authorizer: {'CassandraAuthorizer' if auth else 'AllowAllAuthorizer'}
role_manager: CassandraRoleManager
start_native_transport: true
concurrent_reads: 8
concurrent_writes: 8
"""

    def prepare(self) -> None:
        for d in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs", "conf"):
            (self.home / d).mkdir(parents=True, exist_ok=True)
        (self.home / "conf" / "cassandra.yaml").write_text(self.yaml())
        (self.home / "conf" / "logback.xml").write_text(LOGBACK)

    def command(self):
        cmd = self.java_command()
        # As root, JNA mlockall would pin the whole heap in RAM (~1.5 GiB RSS at 1g);
        # dropping CAP_IPC_LOCK keeps an idle node near 0.5 GiB.
        if os.geteuid() == 0 and _has_setpriv():
            cmd = ["setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", *cmd]
        return cmd, {}

    def java_command(self) -> list[str]:
        """The JVM command line alone (a container runs it as it is)."""
        s, h = self.settings, self.home
        heap = s.cassandra_heap
        jamm = next(self.jars.glob("jamm-*.jar"), None)
        cmd = [
            self.java, f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Xss512k",
            *JVM17_FLAGS,
            *([f"-javaagent:{jamm}"] if jamm else []),
            f"-Dcassandra.config=file://{h / 'conf' / 'cassandra.yaml'}",
            f"-Dcassandra.storagedir={h}",
            f"-Dcassandra.logdir={h / 'logs'}",
            f"-Dlogback.configurationFile={h / 'conf' / 'logback.xml'}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.jmx.local.port={s.cassandra_jmx_port}",
            # single node: nothing to wait for
            "-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.ring_delay_ms=0",
            "-Dcassandra.superuser_setup_delay_ms=0", "-Dcassandra.shutdown_announce_in_ms=0",
            "-cp", f"{h / 'conf'}:{self.jars}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]
        return cmd

    def check(self) -> None:
        from shared.clients.cassandra import connect
        from shared.clients.ports import is_listening

        if not is_listening(self.settings.cassandra_port, self.settings.cassandra_host):
            raise ConnectionRefusedError(f"nothing listens on {self.endpoint} yet")

        cluster, session = connect(self.settings, timeout=3)
        try:
            session.execute("SELECT release_version FROM system.local")
        finally:
            cluster.shutdown()


def _has_setpriv() -> bool:
    import shutil

    return shutil.which("setpriv") is not None
