"""`clickstream simulate` / `profile` through the real click group."""

from __future__ import annotations

import json

from click.testing import CliRunner

from services.cli import cli
from shared.events import decode


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_simulate_writes_valid_json_lines_identically(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert run("simulate", "--seed", "7", "--events", "500", "--out", str(a)).exit_code == 0
    assert run("simulate", "--seed", "7", "--events", "500", "--out", str(b)).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    lines = a.read_bytes().splitlines()
    assert len(lines) == 500
    events = [decode(line) for line in lines]
    assert len({e["event_id"] for e in events}) == 500


def test_simulate_stdout_and_malformed_noise():
    result = CliRunner().invoke(cli, ["simulate", "--seed", "1", "--events", "2000",
                                      "--malformed-rate", "0.1"])
    assert result.exit_code == 0
    lines = result.stdout_bytes.splitlines()
    assert len(lines) == 2000
    bad = 0
    for line in lines:
        try:
            decode(line)
        except ValueError:
            bad += 1
    assert 100 < bad < 300


def test_simulate_rejects_bad_input_in_one_line(tmp_path):
    for args in (["--events", "-1"], ["--bogus"], ["--late-rate", "-0.5"],
                 ["--out", str(tmp_path / "missing" / "x.jsonl")], ["--start", "yesterday"]):
        result = run("simulate", *args)
        assert result.exit_code == 1, args
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, args


def test_profile_json_reports_calibration():
    result = run("profile", "--seed", "3", "--events", "20000", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    for key in ("action_share", "add_to_cart_per_product_view", "session_conversion",
                "purchases_per_add_to_cart", "events_per_session", "returning_share",
                "device_split", "hourly_sessions_share", "top_1pct_product_view_share",
                "calibration"):
        assert key in stats
    assert len(stats["hourly_sessions_share"]) == 24


def test_simulator_commands_have_examples():
    for name in ("simulate", "profile", "generate", "produce"):
        assert "Example:" in cli.commands[name].help, name
