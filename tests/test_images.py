"""The image build contexts: rendered from the local stack's own configuration code, with
no path of the build machine inside; the build key follows every input; engine choice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.stack import engine, images
from shared.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    jars = tmp_path / "jars"
    for server, names in {"kafka": ["kafka_2.13-4.1.1.jar"],
                          "cassandra": ["cassandra-all-5.0.9.jar", "jamm-0.4.0.jar"]}.items():
        (jars / server).mkdir(parents=True)
        for n in names:
            (jars / server / n).write_bytes(b"PK")
    return Settings(_env_file=None, data_dir=tmp_path / "stack", jars_dir=jars)


def _texts(ctx: Path) -> dict[str, str]:
    return {p.relative_to(ctx).as_posix(): p.read_text() for p in ctx.rglob("*")
            if p.is_file() and not p.name.endswith(".jar")}


def test_images_kafka_context_holds_the_local_stack_config(settings, tmp_path):
    ctx = images.render(settings, images.Image("kafka", "4.1.1", images.render_kafka))
    texts = _texts(ctx)
    props = texts["conf/server.properties"].splitlines()
    assert "listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093" in props
    assert "log.dirs=/var/lib/clickstream/kafka/data" in props
    assert "process.roles=broker,controller" in props
    command = texts["command.args"].splitlines()
    assert command[0] == "java" and command[-2:] == [
        "kafka.Kafka", "/var/lib/clickstream/kafka/server.properties"]
    assert "/opt/clickstream/jars/kafka/*" in command
    assert "--cluster-id=CLUSTER_ID" in texts["format.args"].splitlines()
    assert (ctx / "jars" / "kafka" / "kafka_2.13-4.1.1.jar").exists()
    leaks = [name for name, text in texts.items() if str(tmp_path) in text]
    assert leaks == [], f"build-machine paths inside the image: {leaks}"


def test_images_cassandra_context_holds_the_local_stack_config(settings, tmp_path):
    ctx = images.render(settings, images.Image("cassandra", "5.0.9", images.render_cassandra))
    texts = _texts(ctx)
    yaml = texts["conf/cassandra.yaml"].splitlines()
    assert "rpc_address: 0.0.0.0" in yaml
    assert "broadcast_rpc_address: 127.0.0.1" in yaml
    assert "data_file_directories: [/var/lib/clickstream/cassandra/data]" in yaml
    command = texts["command.args"].splitlines()
    assert "-javaagent:/opt/clickstream/jars/cassandra/jamm-0.4.0.jar" in command
    assert "--add-opens=java.base/java.lang=ALL-UNNAMED" in command
    assert command[0] == "java"  # no setpriv: a container has no CAP_IPC_LOCK to drop
    assert [n for n, t in texts.items() if str(tmp_path) in t] == []


def test_images_inputs_hash_follows_content_and_exec_bit(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for ctx in (a, b):
        (ctx / "conf").mkdir(parents=True)
        (ctx / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
        (ctx / "conf" / "x.properties").write_text("k=v\n")
    assert images.inputs_hash(a) == images.inputs_hash(b)
    (b / "conf" / "x.properties").write_text("k=w\n")
    assert images.inputs_hash(a) != images.inputs_hash(b)
    (b / "conf" / "x.properties").write_text("k=v\n")
    os.chmod(b / "Dockerfile", 0o755)
    assert images.inputs_hash(a) != images.inputs_hash(b)


def test_images_missing_jars_say_run_make_setup(tmp_path):
    s = Settings(_env_file=None, data_dir=tmp_path / "stack", jars_dir=tmp_path / "none")
    with pytest.raises(Exception, match="make setup"):
        images.render(s, images.Image("kafka", "4.1.1", images.render_kafka))


def test_images_debian_mirror_from_deb822_and_one_line_sources(tmp_path):
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
                      "Types: deb\nURIs: http://mirror.example/debian-security\n")
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64] http://other.example/debian/ bookworm main\n")
    assert images.debian_mirror([deb822]) == "http://mirror.example/debian"
    assert images.debian_mirror([tmp_path / "missing", one_line]) == "http://other.example/debian/"
    assert images.debian_mirror([]) == "http://deb.debian.org/debian"


def test_engine_docker_host_that_does_not_answer_is_named(monkeypatch, settings):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    reason = engine.available(settings)
    assert reason == "DOCKER_HOST=unix:///nonexistent/docker.sock does not answer"


def test_engine_none_and_not_root_says_how_to_get_one(monkeypatch, settings):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine.shutil, "which", lambda name: None)
    monkeypatch.setattr(engine.os, "geteuid", lambda: 1000)
    reason = engine.available(settings)
    assert reason.startswith("no Docker engine and not root:")
    assert "apt-get install -y docker.io" in reason and "DOCKER_HOST" in reason


def test_engine_private_socket_lives_under_the_data_dir(settings):
    assert engine.private_host(settings) == f"unix://{settings.data_dir}/docker/docker.sock"


def test_engine_leases_of_dead_processes_are_dropped(tmp_path):
    users = tmp_path / "users"
    users.mkdir()
    (users / f"{os.getpid()}-aaaa").touch()
    (users / "999999999-bbbb").touch()  # above any pid_max: that process is gone
    (users / "junk").touch()
    assert [p.name for p in engine._live_users(users)] == [f"{os.getpid()}-aaaa"]
    assert sorted(p.name for p in users.iterdir()) == [f"{os.getpid()}-aaaa"]


def test_backend_auto_is_testcontainers_only_for_an_engine_the_user_named():
    from integration_tests.backends import choose_backend

    assert choose_backend("auto", None) == "local"  # no private engine started for auto
    assert choose_backend("auto", "unix:///nonexistent/docker.sock") == "local"
    assert choose_backend("testcontainers", None) == "testcontainers"
    assert choose_backend("local", "unix:///nonexistent/docker.sock") == "local"


def test_images_servers_listen_on_the_default_ports_whatever_this_machine_uses(settings):
    moved = settings.model_copy(update={"kafka_port": 19092, "kafka_controller_port": 19093,
                                        "cassandra_port": 19042})
    kafka = _texts(images.render(moved, images.Image("kafka", "4.1.1", images.render_kafka)))
    assert "listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093" in kafka[
        "conf/server.properties"].splitlines()
    cassandra = _texts(images.render(moved, images.Image("cassandra", "5.0.9",
                                                         images.render_cassandra)))
    assert "native_transport_port: 9042" in cassandra["conf/cassandra.yaml"].splitlines()


def test_images_one_per_stack_component_plus_the_app():
    assert [i.name for i in images.images()] == ["kafka", "cassandra", "spark", "app"]
    assert images.IMAGE_NAMES == ("kafka", "cassandra", "spark", "app")
