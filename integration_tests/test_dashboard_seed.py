"""`clickstream dashboard --seed-demo`: the demo data is made by the real batch job (Spark
into Cassandra), equals the independent Polars truth over the same simulated events in
both the stream and the batch tables, and is never loaded over existing data."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid

import pytest

from integration_tests.helpers import REPO, assert_tables_equal_truth
from services.stack.schema import apply_cassandra_schema
from shared.settings import settings_env
from testing.dashboard_data import demo_events
from testing.truth import truth

pytestmark = pytest.mark.integration

SEED = """
import datetime as dt, sys
from services.dashboard.demo_seed import seed_demo_if_empty
from shared.settings import get_settings
now = dt.datetime.fromisoformat(sys.argv[1])
print(seed_demo_if_empty(get_settings(), hours=1.0, seed=3, now=now, master="local[2]"))
"""


def seed(settings, now: dt.datetime) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-c", SEED, now.isoformat()], cwd=REPO,
                       env=settings_env(settings), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return int(r.stdout.strip().splitlines()[-1]), r.stdout


def test_seed_demo_is_the_batch_jobs_output_and_never_overwrites(stack):
    ks = f"seed_{uuid.uuid4().hex[:8]}"
    settings = stack.settings.model_copy(update={"cassandra_keyspace": ks})
    apply_cassandra_schema(settings)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    rows, out = seed(settings, now)
    assert rows > 0, out
    # the same events, rebuilt here and aggregated by the independent Polars truth
    events = demo_events(3, now - dt.timedelta(hours=1), now)
    assert events.height > events["event_id"].n_unique()  # duplicates in the demo data
    expected = truth(events)
    assert_tables_equal_truth(settings, expected, "")
    assert_tables_equal_truth(settings, expected, "_batch")

    again, out = seed(settings, now + dt.timedelta(hours=1))
    assert again == 0, out
    assert "demo data NOT loaded" in out
    assert_tables_equal_truth(settings, expected, "")
