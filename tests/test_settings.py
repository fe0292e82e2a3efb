"""Settings: defaults run the local stack on loopback; the environment and .env override."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings


def test_settings_defaults_bind_loopback(monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("CLICKSTREAM_"):
            monkeypatch.delenv(k)
    s = Settings(_env_file=None)
    assert s.kafka_host == "127.0.0.1" and s.cassandra_host == "127.0.0.1"
    assert s.dashboard_host == "127.0.0.1"
    assert s.bootstrap_servers == "127.0.0.1:9092"
    assert s.cassandra_contact_points == ["127.0.0.1"]


def test_settings_environment_points_at_existing_clusters(monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_KAFKA_BOOTSTRAP", "b1:9092,b2:9092")
    monkeypatch.setenv("CLICKSTREAM_CASSANDRA_HOSTS", "c1, c2")
    monkeypatch.setenv("CLICKSTREAM_CASSANDRA_PASSWORD", "s3cret")
    s = Settings(_env_file=None)
    assert s.bootstrap_servers == "b1:9092,b2:9092"
    assert s.cassandra_contact_points == ["c1", "c2"]
    assert "s3cret" not in repr(s)  # secrets never end up in logs
    assert s.cassandra_password.get_secret_value() == "s3cret"


def test_settings_env_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("CLICKSTREAM_KAFKA_TOPIC=from-file\nCLICKSTREAM_KAFKA_PARTITIONS=7\n"
                        "COMPOSE_PROJECT_NAME=ignored\n")
    monkeypatch.setenv("CLICKSTREAM_KAFKA_PARTITIONS", "5")
    s = Settings(_env_file=env_file)
    assert s.kafka_topic == "from-file"
    assert s.kafka_partitions == 5


@pytest.mark.parametrize("name,value", [("KAFKA_PARTITIONS", "0"), ("TEST_BACKEND", "docker"),
                                        ("CASSANDRA_PORT", "not-a-port")])
def test_settings_reject_bad_values(monkeypatch, name, value):
    monkeypatch.setenv(f"CLICKSTREAM_{name}", value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)
