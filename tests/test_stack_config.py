"""Local-stack configuration, checked without starting anything."""

from __future__ import annotations

import socket

import pytest

from services.stack.cassandra import Cassandra
from services.stack.kafka import Kafka
from services.stack.stack import (
    COMPONENTS,
    DEFAULT,
    PORT_SETTINGS,
    SERVER_NAMES,
    LocalStack,
    parse_only,
)
from shared.clients import ports
from shared.errors import ClickstreamError
from shared.settings import Settings


def _settings(tmp_path, **kw) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **kw)


def test_stack_kafka_listens_only_on_loopback_by_default(tmp_path):
    props = Kafka(_settings(tmp_path, kafka_port=19092, kafka_controller_port=19093)).properties()
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in props
    assert "0.0.0.0" not in props
    assert f"log.dirs={tmp_path / 'kafka' / 'data'}" in props
    assert "auto.create.topics.enable=false" in props


def test_stack_cassandra_yaml_uses_settings(tmp_path):
    y = Cassandra(_settings(tmp_path, cassandra_port=19042, cassandra_storage_port=17000)).yaml()
    assert "native_transport_port: 19042" in y and "storage_port: 17000" in y
    assert "rpc_address: 127.0.0.1" in y and "listen_address: 127.0.0.1" in y
    assert "AllowAllAuthenticator" in y
    y_auth = Cassandra(_settings(tmp_path, cassandra_password="x")).yaml()
    assert "PasswordAuthenticator" in y_auth


def test_stack_cassandra_runs_with_the_java17_module_flags(tmp_path):
    cmd, _ = Cassandra(_settings(tmp_path), java="/x/java").command()
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in cmd
    assert "-Xmx768m" in cmd
    assert cmd[-1] == "org.apache.cassandra.service.CassandraDaemon"


def test_stack_parse_only():
    assert parse_only(None) == ["kafka", "cassandra"]
    assert parse_only("spark,kafka") == ["kafka", "spark"]
    with pytest.raises(ClickstreamError, match="unknown component.*zookeeper"):
        parse_only("kafka,zookeeper")


def test_stack_busy_port_error_names_port_setting_and_holder():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ClickstreamError) as e:
            ports.require_free(port, "CLICKSTREAM_KAFKA_PORT")
    msg = str(e.value)
    assert f"port {port} (CLICKSTREAM_KAFKA_PORT) is in use by pid" in msg
    assert "\n" not in msg


def test_free_port_never_hands_out_the_same_port_twice():
    # ports handed out but not yet bound are still free: a repeat would be a clash later
    from shared.clients.ports import free_port

    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_stack_components_and_their_servers():
    assert COMPONENTS == ("kafka", "cassandra", "spark")
    assert SERVER_NAMES == ("kafka", "cassandra", "spark-master", "spark-worker")
    names = [s.name for s in LocalStack(Settings(_env_file=None)).servers(COMPONENTS)]
    assert names == list(SERVER_NAMES)
    assert parse_only(None) == list(DEFAULT)


def test_stack_every_port_setting_is_checked_by_the_server_that_binds_it():
    port_settings = {n for n in Settings.model_fields if n.endswith("_port")}
    assert len(PORT_SETTINGS) == len(set(PORT_SETTINGS))  # one server per port
    assert port_settings - set(PORT_SETTINGS) == {"dashboard_port"}  # not a stack server


def test_stack_server_ports_name_the_variable_that_sets_them(monkeypatch):
    # each port's variable, set in the environment, is the port the server then checks
    for i, name in enumerate(PORT_SETTINGS):
        monkeypatch.setenv(f"CLICKSTREAM_{name.upper()}", str(40_000 + i))
    servers = LocalStack(Settings(_env_file=None)).servers(COMPONENTS)
    got = {var: port for s in servers for port, var in s.ports()}
    assert got == {f"CLICKSTREAM_{n.upper()}": 40_000 + i for i, n in enumerate(PORT_SETTINGS)}
