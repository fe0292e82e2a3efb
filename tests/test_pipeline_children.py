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
