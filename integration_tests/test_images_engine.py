"""Image builds and container starts on a real engine: a build is keyed on its inputs, a
failed build shows the failing step's last lines, a container dying at start shows its
own last log lines."""

from __future__ import annotations

import pytest

from integration_tests.backends import wait_container
from services.stack import images
from shared.errors import ClickstreamError


@pytest.fixture
def client(docker_host):
    import docker

    c = docker.DockerClient(base_url=docker_host, timeout=120)
    yield c
    c.close()


def test_images_build_is_skipped_until_an_input_changes(client, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM debian:bookworm-slim\nCOPY a.txt /a.txt\n")
    (ctx / "a.txt").write_text("one\n")
    image = images.Image("keyed-test", "0", render=None)
    quiet = lambda message: None  # noqa: E731
    try:
        assert images.build(client, image, ctx, echo=quiet) is True
        assert images.build(client, image, ctx, echo=quiet) is False
        (ctx / "a.txt").write_text("two\n")
        assert images.build(client, image, ctx, echo=quiet) is True
        assert images.current_inputs(client, image.ref) == images.inputs_hash(ctx)
    finally:
        client.images.remove(image.ref, force=True)


def test_images_failed_build_shows_the_failing_step(client, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM debian:bookworm-slim\nRUN echo the-step-says-why >&2 && exit 3\n")
    image = images.Image("broken-test", "0", render=None)
    with pytest.raises(ClickstreamError) as err:
        images.build(client, image, ctx, echo=lambda message: None)
    message = str(err.value)
    assert message.startswith(f"building {image.ref} failed:")
    assert "returned a non-zero code: 3" in message
    assert "Step 2/3 : RUN echo the-step-says-why" in message  # step 3 is the inputs label
    assert "\nthe-step-says-why\n" in message  # the step's own output, without colour codes
    assert images.current_inputs(client, image.ref) is None  # nothing was tagged


def test_images_container_dying_at_start_shows_its_last_log_lines(docker_host):
    from testcontainers.core.container import DockerContainer

    dying = DockerContainer(images.ref("kafka")).with_kwargs(
        network_mode="none",  # the private engine has no default bridge
        entrypoint=["/bin/bash", "-c", "echo 'no such listener: BOGUS' >&2; exit 1"])

    def never_ready():
        raise ConnectionRefusedError("nothing listens")

    with dying, pytest.raises(ClickstreamError) as err:
        wait_container(dying, never_ready, "kafka (broken)", timeout=120)
    message = str(err.value)
    assert "kafka (broken): the process exited while starting" in message
    assert "no such listener: BOGUS" in message
