"""The pipeline's children see the pipeline's own Settings, not the environment's."""

from __future__ import annotations

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


def test_pipeline_passes_its_scenarios_to_the_producer(tmp_path):
    from click.testing import CliRunner

    from services.pipeline.cli import demo
    from services.producer.cli import produce

    settings = Settings(_env_file=None, data_dir=tmp_path)
    args = Pipeline(settings, rate=50, scenarios=("flash-sale@+10m+30m", "traffic-drop"),
                    ).producer_args()
    # the producer's own option parser reads exactly what the pipeline passes
    ctx = produce.make_context("produce", args[1:])
    assert [r.name for r in ctx.params["scenarios"]] == ["flash-sale", "traffic-drop"]
    assert ctx.params["rate"] == 50
    # a typo fails at once, with the scenario grammar, not later in the producer's log
    out = CliRunner().invoke(demo, ["--scenario", "flash-sail"])
    assert out.exit_code == 2 and "unknown scenario 'flash-sail'" in out.output
