"""`clickstream generate` and the typed reader."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from click.testing import CliRunner

from services.batch_generator.csv_days import run_generate
from services.cli import cli
from services.simulator.model import Noise, SimConfig, Simulator
from shared.errors import ClickstreamError
from shared.events import CSV_HEADER, polars_schema
from testing.csv_reader import read_events

START = 1767571200000  # 2026-01-05


def config(**kw):
    return SimConfig(seed=4, events_per_second=20_000 / 86_400, **kw)


def test_generate_files_hold_exactly_their_dates(tmp_path):
    result = run_generate(config(), 2, tmp_path, START, workers=1, progress=False)
    assert [p.name for p in result.files] == ["events-2026-01-05.csv", "events-2026-01-06.csv"]
    total = 0
    for path, day in zip(result.files, (dt.date(2026, 1, 5), dt.date(2026, 1, 6)), strict=True):
        assert path.read_text().splitlines()[0].split(",") == list(CSV_HEADER)
        df = read_events(path)
        assert df.schema == polars_schema()
        assert (df["timestamp"].dt.date() == day).all()
        assert df["timestamp"].is_sorted()
        total += df.height
    assert total == result.events and 30_000 < total < 50_000
    # sessions that cross midnight continue in the next file
    both = read_events(tmp_path)
    first_day = both.filter(pl.col("timestamp").dt.date() == dt.date(2026, 1, 5))
    second_day = both.filter(pl.col("timestamp").dt.date() == dt.date(2026, 1, 6))
    assert set(first_day["session_id"]) & set(second_day["session_id"])


def test_generate_is_identical_whatever_the_worker_count(tmp_path):
    one = run_generate(config(), 2, tmp_path / "one", START, workers=1, progress=False)
    two = run_generate(config(), 2, tmp_path / "two", START, workers=2, progress=False)
    for a, b in zip(one.files, two.files, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_generate_matches_the_stream(tmp_path):
    """The CSV day holds the same events as the stream, by event id."""
    run_generate(config(), 1, tmp_path, START, workers=1, progress=False)
    csv = read_events(tmp_path)
    sim = Simulator(config())
    stream = {}
    for row in sim.rows(START):
        if row[2] >= START + 3_600_000:
            break
        stream[row[1]] = row
    csv_rows = {r["event_id"]: r for r in csv.head(5000).iter_rows(named=True)}
    common = set(stream) & set(csv_rows)
    assert len(common) > 200
    for eid in list(common)[:200]:
        assert csv_rows[eid]["page_duration_ms"] == stream[eid][26]
        assert int(csv_rows[eid]["timestamp"].timestamp() * 1000) == stream[eid][2]


def test_generate_late_and_duplicate_noise_stay_on_the_event_date(tmp_path):
    noisy = config(noise=Noise(late_rate=0.05, late_median_s=3600, duplicate_rate=0.02,
                               malformed_rate=0.05))
    run_generate(noisy, 1, tmp_path, START, workers=1, progress=False)
    df = read_events(tmp_path)
    assert (df["timestamp"].dt.date() == dt.date(2026, 1, 5)).all()
    assert df["event_id"].is_duplicated().sum() > 100
    assert (df["sent_at"].dt.date() > dt.date(2026, 1, 5)).sum() > 0


def test_reader_fails_loudly_on_bad_rows(tmp_path):
    run_generate(config(), 1, tmp_path, START, workers=1, progress=False)
    path = next(tmp_path.glob("*.csv"))
    lines = path.read_text().splitlines()
    row = lines[5].split(",")
    cases = {
        "price": (CSV_HEADER.index("page_duration_ms"), "12.5s"),
        "ts": (CSV_HEADER.index("timestamp"), "2026-01-05 10:00"),
        "null": (CSV_HEADER.index("user_id"), ""),
        "action": (CSV_HEADER.index("action"), "add-to-basket"),
    }
    for name, (col, value) in cases.items():
        broken = list(row)
        broken[col] = value
        bad = tmp_path / f"bad-{name}" / "events-2026-01-05.csv"
        bad.parent.mkdir()
        bad.write_text("\n".join([lines[0], lines[1], ",".join(broken)]) + "\n")
        with pytest.raises(ClickstreamError, match=str(bad.parent)):
            read_events(bad)
    wrong_header = tmp_path / "hdr.csv"
    wrong_header.write_text("a,b\n1,2\n")
    with pytest.raises(ClickstreamError, match="header"):
        read_events(wrong_header)


def test_generate_cli_and_bad_input(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(cli, ["generate", "--days", "1", "--out", str(tmp_path / "d"),
                             "--events-per-day", "5000", "--seed", "1", "--quiet",
                             "--workers", "1"])
    assert ok.exit_code == 0, ok.output
    assert "wrote" in ok.output
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args in (["--days", "-1", "--out", str(tmp_path)],
                 ["--days", "1", "--out", str(blocker / "sub")],
                 ["--days", "1"],
                 ["--days", "1", "--out", str(tmp_path), "--events-per-day", "-5"]):
        result = runner.invoke(cli, ["generate", *args])
        assert result.exit_code == 1, args
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, args


def test_generate_column_path_equals_the_row_path():
    """The CSV days are built column-wise; they hold exactly the frames of the row path."""
    from services.batch_generator.csv_days import day_frames, rows_to_frame

    sim = Simulator(config())
    end = START + 6 * 3_600_000
    rows = pl.concat([rows_to_frame(r) for r in sim.rows_by_event_time(START, end, 1000)])
    frames = list(day_frames(sim, START, end, 1000))
    assert len(frames) > 2
    assert pl.concat(frames).equals(rows) and rows.height > 1000


NOISY = Noise(late_rate=0.05, late_median_s=3600, duplicate_rate=0.02, malformed_rate=0.05)
# sha256 of the two files of `run_generate(config(...), 2, ...)`, made by the code before
# the timestamps were written as text (122512f: Polars formatted the datetimes)
PINNED_DAYS = {
    "clean": ((config(), "1"),
              "4eadb7d7b7b9a5a074ab4e26456abcc5b81f0068267c2360159f25eba582c338"),
    "noisy": ((config(noise=NOISY), "1"),
              "28ba22e6d75f283d3027999d983a7c3b1f778e877fdc6cad77a3f35c94ad1507"),
    "hours-late": ((config(noise=Noise(late_rate=0.3, late_median_s=200_000)), "1"),
                   "5bbc93eabe58e8896e3ebd2cb56819dcf52194912067c38ac527c7053a3fbc8f"),
    "bots": ((config(noise=Noise(bot_rate=0.05, late_rate=0.02)), "1"),
             "46bd2ccbcd7dd395d835e3ad0d6046468e1136ff8ebfac0a020982570ce3657c"),
    "v2": ((config(), "2"),
           "b0d24ecdb0915f41fd0c6237abcc92c2f970f4602ee06a5a6113e3ad3403e233"),
    "mix": ((config(noise=NOISY), "mix"),
            "3fd6df9c38ce0b69fb20f2ad305c608d96591efc564c3b504ae07cb6b53de241"),
}


@pytest.mark.parametrize("case", list(PINNED_DAYS))
def test_generate_bytes_are_pinned(case, tmp_path):
    import hashlib

    (cfg, mode), digest = PINNED_DAYS[case]
    result = run_generate(cfg, 2, tmp_path, START, workers=1, progress=False,
                          schema_version=mode)
    h = hashlib.sha256()
    for path in result.files:
        h.update(path.read_bytes())
    assert h.hexdigest() == digest


@pytest.mark.parametrize("span_ms", [0, 59_999, 3_600_000, 30 * 86_400_000],
                         ids=["one-ms", "a-minute", "an-hour", "a-month"])
def test_timestamp_text_is_the_csv_format(span_ms):
    """Timestamps written as text from per-minute tables (or, spanning more than a week,
    by Polars) read as `CSV_TIMESTAMP_FORMAT` says, to the millisecond."""
    import random

    from services.batch_generator.csv_days import _timestamp_text
    from shared.events import CSV_TIMESTAMP_FORMAT

    rng = random.Random(span_ms)
    # from a year's last second, a leap day's last ms, a minute's first ms
    for start in (1767225599000, 1709251199999, START):
        ms = [start + int(rng.random() * (span_ms + 1)) for _ in range(500)] + [start]
        column = pl.Series("t", ms).cast(pl.Datetime("ms", "UTC"))
        text = _timestamp_text(column)
        expected = [dt.datetime.fromtimestamp(m // 1000, dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.") + f"{m % 1000:03d}Z" for m in ms]
        assert text.name == "t" and text.to_list() == expected
        assert text.str.strptime(pl.Datetime("ms", "UTC"), CSV_TIMESTAMP_FORMAT,
                                 strict=True).equals(column)


def test_generate_workers_environment_is_set_unless_the_users(monkeypatch):
    """The workers' allocator setting is in the environment while they start, a value the
    user set wins, and the CLI's own environment is as before afterwards."""
    import os

    from services.batch_generator.csv_days import WORKER_ENV, _environment

    (key, value), = WORKER_ENV.items()
    monkeypatch.delenv(key, raising=False)
    with _environment(WORKER_ENV):
        assert os.environ[key] == value
    assert key not in os.environ
    monkeypatch.setenv(key, "users:own")
    with _environment(WORKER_ENV):
        assert os.environ[key] == "users:own"
    assert os.environ[key] == "users:own"
