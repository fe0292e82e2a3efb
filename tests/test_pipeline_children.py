"""The pipeline's children see the pipeline's own Settings, not the environment's."""

from __future__ import annotations

import pytest

from services.pipeline.run import Pipeline
from shared.settings import Settings


def test_pipeline_child_gets_the_settings_passed_in_code(tmp_path, monkeypatch):
    # the environment says otherwise: the child must follow the Settings object
    monkeypatch.setenv("CLICKSTREAM_DATA_DIR", str(tmp_path / "from-env"))
    settings = Settings(_env_file=None, data_dir=tmp_path / "from-code")
    child = Pipeline(settings, echo=lambda _: None)._child("probe", "logs", "kafka", "-n", "1")
    child.start()
    assert child.proc.wait(60) == 0
    # `clickstream logs` names the log file under the data folder it was given
    text = child.log.read_text()
    assert f"==> {tmp_path / 'from-code' / 'logs' / 'kafka.log'} <==" in text
    assert "from-env" not in text


def test_pipeline_gives_producer_and_dashboard_the_same_scenario_windows(tmp_path):
    from click.testing import CliRunner

    from services.dashboard.cli import dashboard
    from services.pipeline.cli import demo
    from services.producer.cli import produce
    from services.simulator.scenario_option import parse_scenario

    settings = Settings(_env_file=None, data_dir=tmp_path)
    pipeline = Pipeline(settings, rate=50, scenarios=("flash-sale@+10m+30m", "traffic-drop"))
    now_ms = 1_764_670_000_000  # 2025-12-02 10:06:40 UTC
    args = pipeline.producer_args(now_ms)
    # the producer's own option parser reads exactly what the pipeline passes...
    ctx = produce.make_context("produce", args[1:])
    assert [r.name for r in ctx.params["scenarios"]] == ["flash-sale", "traffic-drop"]
    assert ctx.params["rate"] == 50
    # ...absolute windows, resolved from the run's start, that read the same at any later
    # time (the dashboard starts seconds after the producer)
    later = [r.window(now_ms + 7_000) for r in ctx.params["scenarios"]]
    expected = [parse_scenario(s).window(now_ms) for s in pipeline.scenarios]
    assert later == expected and expected[0].start_ms == (now_ms + 600_000) // 60_000 * 60_000
    assert pipeline.scenario_args(now_ms) == args[-len(pipeline.scenario_args(now_ms)):]
    dashboard_ctx = dashboard.make_context("dashboard", pipeline.dashboard_args(now_ms)[1:])
    assert [r.window(now_ms + 9_000) for r in dashboard_ctx.params["scenarios"]] == expected
    # a typo fails at once, with the scenario grammar, not later in the producer's log
    out = CliRunner().invoke(demo, ["--scenario", "flash-sail"])
    assert out.exit_code == 2 and "unknown scenario 'flash-sail'" in out.output


@pytest.mark.parametrize("command", ["demo", "stream"])
def test_pipeline_passes_seed_and_schema_version_to_the_producer_and_dashboard(
        command, tmp_path, monkeypatch):
    """`clickstream demo|stream --seed --schema-version` reach the producer's own option
    parser (and the dashboard's seed, whose catalogue gives the products' categories)."""
    from click.testing import CliRunner

    from services.dashboard.cli import dashboard
    from services.pipeline import cli
    from services.producer.cli import produce

    built: list[Pipeline] = []
    monkeypatch.setattr(Pipeline, "run", lambda self, duration: built.append(self))
    monkeypatch.setenv("CLICKSTREAM_DATA_DIR", str(tmp_path))
    now_ms = 1_764_670_000_000
    for options, seed, version in (([], 7, "1"),
                                   (["--seed", "11", "--schema-version", "mix"], 11, "mix"),
                                   (["--schema-version", "2"], 7, "2")):
        out = CliRunner().invoke(getattr(cli, command), ["--rate", "50", *options])
        assert out.exit_code == 0, out.output
        pipeline = built[-1]
        assert pipeline.dashboard is (command == "demo")
        ctx = produce.make_context("produce", pipeline.producer_args(now_ms)[1:])
        assert (ctx.params["seed"], ctx.params["schema_version"], ctx.params["rate"]) == (
            seed, version, 50)
        ctx = dashboard.make_context("dashboard", pipeline.dashboard_args(now_ms)[1:])
        assert ctx.params["seed"] == seed
    out = CliRunner().invoke(getattr(cli, command), ["--schema-version", "3"])
    assert out.exit_code == 2 and "'3' is not one of '1', '2', 'mix'" in out.output
