"""The variants and the first-render arithmetic of `bench/bench_dashboard.py` (no servers,
no browser)."""

import panel as pn

from bench.bench_dashboard import _records, _variants
from dashboards import specs


def _load(total: float) -> dict:
    return {"total": total, "html": total / 4, "scripts": total / 2}


def test_bench_dashboard_first_render_ratio_is_paired_with_the_same_rounds_reference():
    reference = [_load(t) for t in (8.0, 2.0, 4.0, 3.0)]
    measured = {"renders": [_load(t) for t in (9.0, 1.0, 4.0, 6.0)], "made": [0.5, 0.2, 0.2, 0.3],
                "warm_up_s": None}
    (record,) = _records("dashboard_hvplot_before", "hvplot_before", measured, reference, "")
    assert record["value"] == 5.0  # the median of every load, the cold one included
    assert record["warm_median_s"] == 4.0
    assert record["ratios_to_reference"] == [1.12, 0.5, 1.0, 2.0]
    assert record["ratio_to_reference"] == 1.0  # rounds 1-3: 0.5, 1.0, 2.0
    assert (record["html_median_s"], record["scripts_median_s"]) == (1.0, 2.0)
    assert record["session_made_ms"] == [500, 200, 200, 300]
    assert record["warm_up_s"] is None and "runs[0] is cold" in record["notes"]
    measured["warm_up_s"] = 4.56  # the app warms up when it starts: runs[0] comes after
    (record,) = _records("dashboard", "hvplot", measured, reference, "")
    assert record["warm_up_s"] == 4.56 and "after the server's warm-up (4.6 s" in record["notes"]


def test_bench_dashboard_variants_before_draws_every_session_with_webgl_the_app_once():
    variants = _variants()
    assert list(variants)[:2] == ["hvplot", "bokeh"]  # the app, then the reference
    spec = specs.SPECS["devices"]
    app = variants["hvplot"]
    assert app["full"] and "dashboard" not in app and not app.get("validate")
    assert app["chart"](spec).ensure().figure.output_backend == "canvas"
    before = variants["hvplot_before"]
    assert not before.get("full") and before["validate"] and before["warm"] is False
    assert all(v.get("warm", True) for name, v in variants.items() if name != "hvplot_before")
    assert before["dashboard"].page_template is pn.template.FastListTemplate
    a, b = before["chart"](spec).ensure(), before["chart"](spec).ensure()
    assert a.figure.output_backend == b.figure.output_backend == "webgl"
    assert a.figure.id != b.figure.id
