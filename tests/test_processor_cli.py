"""`clickstream process`: options and one-line errors (no Spark started)."""

from click.testing import CliRunner

from services.cli import cli


def test_processor_cli_help_has_example():
    r = CliRunner().invoke(cli, ["process", "--help"])
    assert r.exit_code == 0
    assert "Example:" in r.output and "--mode" in r.output and "--master" in r.output


def test_processor_cli_batch_needs_input():
    r = CliRunner().invoke(cli, ["process", "--mode", "batch"])
    assert r.exit_code == 1
    assert "error: --mode batch needs --input" in r.output


def test_processor_cli_batch_missing_folder_is_one_line(tmp_path):
    r = CliRunner().invoke(cli, ["process", "--mode", "batch", "--input", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output.startswith("error: no CSV files at")


def test_processor_cli_stream_rejects_batch_options():
    r = CliRunner().invoke(cli, ["process", "--mode", "stream", "--input", "x"])
    assert r.exit_code == 1 and "for --mode batch" in r.output


def test_processor_cli_bad_date():
    r = CliRunner().invoke(cli, ["process", "--mode", "batch", "--input", "x", "--from", "13/1"])
    assert r.exit_code == 2 and "YYYY-MM-DD" in r.output


def test_processor_resolve_inputs_date_range(tmp_path):
    import datetime as dt

    from services.processor.batch import resolve_inputs

    for d in ("2026-01-01", "2026-01-02", "2026-01-03"):
        (tmp_path / f"events-{d}.csv").write_text("x\n")
    got = resolve_inputs(tmp_path, dt.date(2026, 1, 2), dt.date(2026, 1, 3))
    assert [p.name for p in got] == ["events-2026-01-02.csv", "events-2026-01-03.csv"]
    assert len(resolve_inputs(str(tmp_path / "events-2026-01-0[12].csv"))) == 2
