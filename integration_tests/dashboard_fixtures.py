"""Browser and server fixtures for the dashboard tests (pytest-playwright + Debian Chromium).

Chromium is Debian's (`/usr/bin/chromium`): `playwright install` cannot download here. If
it is missing, every browser test fails with one line saying how to install it.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from integration_tests.helpers import CLI, REPO, settings_env
from shared.clients.ports import free_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
RENDERED = "window.Bokeh && Bokeh.documents.length && Bokeh.documents[0].is_idle"

#: true once every figure titled in `titles` is in the document with rows in a glyph
CHARTS_WITH_DATA = """(titles) => {
  if (!(window.Bokeh && Bokeh.documents.length)) return false;
  const drawn = new Set();
  for (const m of Bokeh.documents[0].all_models) {
    if (m.renderers && m.title && titles.includes(m.title.text) &&
        m.renderers.some(r => r.data_source && r.data_source.get_length() > 0))
      drawn.add(m.title.text);
  }
  return titles.every(t => drawn.has(t));
}"""


def require_chromium(path: Path = CHROMIUM) -> str:
    """The Chromium executable, or a one-line test failure saying how to install it."""
    if not path.exists():
        pytest.fail(f"{path} is missing: run `apt-get install -y chromium` "
                    f"(the browser tests drive Debian's Chromium)", pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": require_chromium(),
            "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 4300}}


def local_only(page, base_url: str) -> None:
    """Fulfil every non-local request empty (the template's web fonts would hang)."""
    page.route("**/*", lambda route: route.continue_()
               if route.request.url.startswith(base_url) else route.fulfill(status=200, body=""))


def liveness(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "liveness", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def wait_live(url: str, proc, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited {proc.returncode}: {_tail(log)}")
        if liveness(url):
            return
        time.sleep(0.3)
    raise AssertionError(f"dashboard /liveness did not answer in {timeout}s: {_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def served_dashboard(settings, refresh: float = 2.0, args: tuple[str, ...] = ()):
    """`clickstream dashboard [ARGS]` on a free port; yields its base URL.

    Its output goes to a log file under data_dir (a pipe nobody reads would fill up and
    block the server while Cassandra is down and the driver logs errors).
    """
    port = free_port()
    log = Path(settings.data_dir) / f"dashboard-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen([*CLI, "dashboard", "--port", str(port), "--refresh", str(refresh),
                                 *args], env=settings_env(settings), cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_live(url, proc, log)
        yield url
    except BaseException:
        # shown with the failure: what the server said (a traceback while building a page)
        print(f"--- the dashboard's log ({log}), last lines:\n{_tail(log, 40)}")
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def kpi_text(page, name: str) -> str:
    """The value shown by a KPI indicator (its label is the first line)."""
    texts = [t.strip() for t in page.locator(f".kpi-{name} div").all_inner_texts()]
    return texts[-1] if texts else ""


def expected_kpis(raw: pl.DataFrame) -> dict:
    """The header numbers, from raw events (duplicates included) with Polars -- never
    through the dashboard's views. Sessions are counted once, wherever they cross midnight."""
    ev = raw.unique(subset=["event_id"])
    per_min = ev.group_by(pl.col("timestamp").dt.truncate("1m")).len()
    sessions = ev.group_by("session_id").agg((pl.col("action") == "purchase").any().alias("buy"))
    return {
        "events_per_minute": ev.height / per_min.height,
        "sessions": sessions.height,
        "conversion_rate": sessions["buy"].sum() / sessions.height,
        "revenue": ev.filter(pl.col("action") == "purchase")["revenue_cents"].sum() / 100,
        "invalid": 0, "late": 0, "duplicates": raw.height - ev.height,
    }


def wait_kpis(page, expected: dict, timeout_s: float = 60) -> None:
    """Poll the header until it shows `expected` (formatted like the app does)."""
    from dashboards.specs import format_kpis

    want = format_kpis(expected)
    deadline = time.monotonic() + timeout_s
    while True:
        got = {name: kpi_text(page, name.replace("_", "-")) for name in want}
        if got == want or time.monotonic() > deadline:
            assert got == want, f"KPIs after {timeout_s:g} s: shown {got}, expected {want}"
            return
        page.wait_for_timeout(500)
