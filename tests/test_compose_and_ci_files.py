"""docker-compose and the GitHub workflow, checked statically: against the vendored
Compose-spec / GitHub-workflow JSON schemas, and for the properties we promise: pinned
images of our own, health-gated start order, loopback-only ports, real commands.
(integration_tests/test_compose_demo.py runs the compose file for real.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.cli import cli

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "compose" / "docker-compose.yml"
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def _check_jsonschema(builtin: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", builtin, str(path)],
        capture_output=True, text=True,
    )


def test_compose_file_is_valid_compose_spec():
    r = _check_jsonschema("vendor.compose-spec", COMPOSE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_validation_catches_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  kafka:\n    image: apache/kafka:4.1.1\n    ports: 9092\n")
    assert _check_jsonschema("vendor.compose-spec", broken).returncode != 0


def test_github_workflow_is_valid():
    r = _check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_images_are_pinned(compose):
    for name, svc in compose["services"].items():
        image = svc.get("image", "")
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned"


def test_compose_servers_have_protocol_healthchecks(compose):
    # probe.sh speaks each server's protocol (see docker/probe.sh), not a port-open check
    assert compose["services"]["kafka"]["healthcheck"]["test"][1:3] == [
        "/opt/clickstream/probe.sh", "kafka"]
    assert compose["services"]["cassandra"]["healthcheck"]["test"][1:3] == [
        "/opt/clickstream/probe.sh", "cql"]


def test_compose_runs_the_project_images(compose):
    from services.stack import images

    refs = {i.ref for i in images.images()}
    for name, svc in compose["services"].items():
        assert svc["image"] in refs, f"{name} runs {svc['image']}, not one of our images"


def test_compose_start_order_waits_for_health(compose):
    services = compose["services"]
    for server in ("kafka", "cassandra"):
        assert services["schema"]["depends_on"][server]["condition"] == "service_healthy"
    for name in ("producer", "processor", "dashboard", "generator"):
        condition = services[name]["depends_on"]["schema"]["condition"]
        assert condition == "service_completed_successfully"


def test_compose_ports_bind_loopback_only(compose):
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_profiles_match_make_targets(compose):
    makefile = (REPO / "Makefile").read_text()
    profiles = {p for svc in compose["services"].values() for p in svc.get("profiles", [])}
    assert profiles == {"demo", "stream", "batch", "dashboard"}
    for target in ("demo", "stream", "batch", "dev-dashboard"):
        assert f"\n{target}:" in makefile, f"make {target} is missing"


def test_compose_commands_are_real_cli_subcommands(compose):
    for name, svc in compose["services"].items():
        if "command" in svc and svc.get("image", "").startswith("clickstream"):
            assert svc["command"][0] in cli.commands, f"{name} runs unknown `{svc['command'][0]}`"
