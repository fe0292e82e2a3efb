"""The dashboard's charts: drawn once with hvplot, then updated in place.

`Chart(spec)` renders its `ChartSpec` with hvplot (`hv.render` -> a Bokeh figure: the
declarative API, hover, legends, colours) the first time it is shown. A refresh calls
`chart.update(df)`, which only replaces the data of the figure's `ColumnDataSource`s (and
the axis ranges and categories): the figure and its sources are never rebuilt, so a refresh
costs a few data patches, not a HoloViews re-render (measured ~18 ms of Python per chart
plus a document rebuild, see `make bench BENCH=dashboard`).

hvplot draws each chart once per server process: a browser session gets its own copy of
that drawing (`Drawings`: the figure kept serialized, never as a Bokeh model, since a model
belongs to one document), a quarter of what building the figure with plain Bokeh costs and
a tenth of drawing it again.

How a frame fills a rendered figure, per hvplot's layout (pinned by the unit tests):
* bars without `by`: one source with the frame's x, y and hover columns;
* bars with `by`: one source with `xoffsets` = (x, by) pairs, nested category factors;
* lines with `by`: one line and one marker renderer per by-value, each with its own
  source holding that series' rows (a marker, so a series of one point still shows).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import panel as pn
from bokeh.core.has_props import HasProps
from bokeh.core.properties import field
from bokeh.core.property.descriptors import PropertyDescriptor
from bokeh.core.serialization import Deserializer, Serializer
from bokeh.document import Document
from bokeh.models import (
    BoxAnnotation,
    ColumnDataSource,
    FactorRange,
    Label,
    Legend,
    LegendItem,
    NumeralTickFormatter,
)
from bokeh.transform import dodge
from bokeh.util.serialization import make_id

from dashboards.ranges import table_for
from dashboards.reader import Snapshot, empty_frame
from dashboards.specs import ChartSpec

CHART_HEIGHT = 280
COUNT_FORMAT = "0,0.[00]"  # numeral.js: 200,000 and 0.25, never 2.000e+5
PALETTE = ("#30a2da", "#fc4f30", "#e5ae38", "#6d904f", "#8b8b8b", "#9467bd", "#8c564b",
           "#17becf", "#e377c2", "#bcbd22")  # one colour per series
_PLACEHOLDER_TIME = pd.Timestamp("2000-01-01")


def empty_view(spec: ChartSpec) -> pd.DataFrame:
    """What the chart's view makes of an empty table: the frame's columns and types."""
    now = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    snap = Snapshot("stream", "1 hour", now - dt.timedelta(hours=1), now,
                    {spec.table: empty_frame(table_for(spec.table, "stream"))})
    return spec.view(snap)


def _column(s: pd.Series) -> np.ndarray | list:
    return s.astype(str).tolist() if s.dtype == object else s.to_numpy()


def _placeholder(frame: pd.DataFrame, spec: ChartSpec) -> pd.DataFrame:
    """A frame of the view's types with a row per series: hvplot makes every renderer
    (and category axis) from it, which an empty frame would not."""
    if len(frame) and spec.by is None:
        return frame
    n = max(len(spec.by_values), 1)
    values = {}
    for c in frame.columns:
        kind = frame[c].dtype.kind
        values[c] = ([_PLACEHOLDER_TIME] * n if kind == "M" else [0] * n if kind in "iufb"
                     else [""] * n)
    if spec.by:
        values[spec.by] = list(spec.by_values)
    return pd.DataFrame(values).astype(frame.dtypes.to_dict())


def _tooltips(spec: ChartSpec, time_x: bool) -> list[tuple[str, str]]:
    x = f"@{{{spec.x}}}{{%F %H:%M}}" if time_x else f"@{{{spec.x}}}"
    tips = [(spec.x, x)]
    if spec.by:
        tips.append((spec.by, f"@{{{spec.by}}}"))
    tips.append((spec.y, f"@{{{spec.y}}}{{{spec.y_format or COUNT_FORMAT}}}"))
    tips += [(c, f"@{{{c}}}{{{fmt}}}") for c, fmt in spec.hover]
    return tips


#: HoloViews' plotting is not thread-safe: two drawings at once in one process (the server's
#: warm-up thread and a first browser session) can fail inside it ("'str' object has no
#: attribute 'update'" in `_update_title`, reproduced with two threads drawing every spec)
RENDERING = threading.Lock()


def render(spec: ChartSpec, frame: pd.DataFrame):
    """The spec drawn by hvplot from `frame`, as a Bokeh figure (one drawing at a time)."""
    with RENDERING:
        return _render(spec, frame)


def _render(spec: ChartSpec, frame: pd.DataFrame):
    import holoviews as hv
    import hvplot.pandas  # noqa: F401 - registers df.hvplot

    time_x = frame[spec.x].dtype.kind == "M"
    tips = _tooltips(spec, time_x)
    opts = dict(x=spec.x, y=spec.y, title=spec.full_title, height=CHART_HEIGHT,
                responsive=True, hover_cols=[c for c, _ in spec.hover],
                hover_tooltips=tips, grid=True)
    # Bokeh's default ticks turn 200,000 into 2.000e+5: every value axis gets a numeral
    # format (a barh's value axis is the figure's x: HoloViews formats the axis drawn)
    value_axis = "xformatter" if spec.kind == "barh" else "yformatter"
    opts[value_axis] = NumeralTickFormatter(format=spec.y_format or COUNT_FORMAT)
    if spec.kind == "line":
        lines = frame.hvplot.line(by=spec.by, color=list(PALETTE), line_width=2, **opts)
        # a compact legend: seven pages must fit beside a 280-px plot
        element = lines.opts(legend_position="right", legend_opts={
            "label_text_font_size": "8pt", "spacing": 0, "padding": 2, "glyph_height": 12})
    elif spec.by:
        element = frame.hvplot.bar(by=spec.by, color=list(PALETTE), rot=30, **opts) \
            .opts(legend_position="right")
    elif spec.kind == "barh":
        element = frame.hvplot.barh(color=spec.color, flip_yaxis=True, **opts)
    else:
        element = frame.hvplot.bar(color=spec.color, rot=0 if time_x else 30, **opts)
    # hv.render would attach the plot to curdoc() and set that document's theme: in a
    # served session that is the page's document (or, in a callback, a proxy of it that
    # refuses it); the drawing gets a document of its own instead
    plot = hv.renderer("bokeh").get_plot(element.opts(default_tools=["save"], toolbar="above"),
                                         doc=Document())
    fig = plot.state
    fig.toolbar.logo = None
    # HoloViews asks for WebGL; our charts have at most a few thousand points, and each
    # WebGL canvas costs the browser a GL context (a software one without a GPU)
    fig.output_backend = "canvas"
    if spec.by and spec.kind != "line":
        # grouped bars: HoloViews labels each bar with its series, which overlap at any
        # size; a legend says the series once and the axis names only the groups
        (renderer,) = fig.renderers
        fig.add_layout(Legend(items=[LegendItem(label=field(spec.by), renderers=[renderer])],
                              location="top_right", label_text_font_size="9pt"))
        fig.xaxis.major_label_text_font_size = "0pt"
        fig.xaxis.major_tick_line_color = None
        fig.xaxis.group_label_orientation = 0.5
    if spec.kind == "line":
        # a marker per point on each line's own source: the first minute of a stream is one
        # point per series, which a line alone does not draw (an hvplot scatter overlay
        # would do the same at twice the render time)
        for r in list(fig.renderers):
            fig.scatter(x=r.glyph.x, y=r.glyph.y, source=r.data_source, size=4,
                        color=r.glyph.line_color)
    fig.title.text_font_size = "11pt"
    return fig


@dataclass(frozen=True)
class Mark:
    """A time window shaded on every time chart, e.g. a scenario injected into the traffic
    (`clickstream demo --scenario ...`)."""
    label: str
    start: dt.datetime
    end: dt.datetime


def _shade(figure, mark: Mark) -> None:
    ms = lambda t: t.timestamp() * 1000  # noqa: E731 - Bokeh's datetime axis unit
    figure.add_layout(BoxAnnotation(left=ms(mark.start), right=ms(mark.end),
                                    fill_color=PALETTE[1], fill_alpha=0.12, line_alpha=0))
    figure.add_layout(Label(x=ms(mark.start), y=4, y_units="screen", text=mark.label,
                            text_font_size="9pt", text_color=PALETTE[1], x_offset=3))


_ID = re.compile(r'"id":"([^"\\]+)"')


class _Copier(Deserializer):
    """Bokeh's Deserializer, less the work a copy of a whole figure does not need: it makes
    every model's "unstable" defaults (a figure's default toolbar, title, ranges...) before
    setting the serialized values over them, and compares each plain value with the old
    one to notify a change nobody listens to (a new model has no document and no
    callbacks). A third of the time per figure; the copy serializes to the same JSON as
    the drawing (`test_dashboard_chart_drawn_once_per_process...`)."""

    def _decode_object_ref(self, obj):
        cls = self._resolve_type(obj["name"])
        model = cls.__new__(cls, id=obj["id"])
        self._references[model.id] = model
        super(HasProps, model).__init__()  # HasProps.__init__ without the defaults
        model._property_values = {}
        model._unstable_default_values = {}
        model._unstable_themed_values = {}
        model._initialized = True
        values = {k: self._decode(v) for k, v in obj.get("attributes", {}).items()}
        for name, value in values.items():
            desc = cls.lookup(name)
            if type(desc) is PropertyDescriptor:  # validated and wrapped, as set_from_json
                desc._set_value(model, desc.property.prepare_value(model, name, value))
            else:  # data specs (fields, values, units) and column data: Bokeh's own path
                model.set_from_json(name, value)
        return model


class Drawings:
    """The figures drawn in this process, each kept as Bokeh's serialized form (JSON text),
    so that the next browser session gets a copy with new model ids instead of a new
    drawing. A Bokeh model belongs to one document: the cache never holds one.

    A copy of the Overview tab's six charts takes 50-100 ms (Bokeh's own Deserializer:
    250-360 ms); drawing them with hvplot (`hv.render`) 500-600 ms, with plain
    `bokeh.plotting` 200-250 ms.
    """

    def __init__(self):
        self._texts: dict[object, str] = {}
        # held while drawing: a caller that comes meanwhile (a browser session during the
        # server's warm-up) waits and gets a copy instead of drawing the chart again
        self._lock = threading.Lock()

    def figure(self, key, draw: Callable[[], object]):
        """A figure of its own for the caller: `draw()` the first time, then copies."""
        with self._lock:
            text = self._texts.get(key)
            if text is None:
                fig = draw()
                serialized = Serializer(deferred=False).serialize(fig)  # arrays inline, base64
                self._texts[key] = json.dumps(serialized.content, separators=(",", ":"))
                return fig
        fresh: dict[str, str] = {}

        def new_id(m: re.Match) -> str:
            old = m.group(1)
            if old not in fresh:
                fresh[old] = make_id()
            return f'"id":"{fresh[old]}"'

        fig = _Copier().deserialize(json.loads(_ID.sub(new_id, text)))
        for r in (fig.x_range, fig.y_range):  # JSON has no tuples: nested factors are pairs
            if isinstance(r, FactorRange):
                r.factors = [tuple(f) if isinstance(f, list) else f for f in r.factors]
        return fig

    def __len__(self) -> int:
        return len(self._texts)


#: this server process's drawings, shared by its browser sessions
DRAWINGS = Drawings()


class Chart:
    """One chart: an hvplot-rendered Bokeh figure in a Panel pane; `update(df)` patches it.

    The figure is rendered on first use (`ensure`), not with the Chart: the charts of tabs
    nobody opened cost nothing. It is drawn once per process (`Drawings`); `drawings=None`
    draws it for every Chart (the bench's before/after).
    """

    def __init__(self, spec: ChartSpec, render=render, drawings: Drawings | None = DRAWINGS):
        self.spec = spec
        self._render = render  # (spec, frame) -> Bokeh figure; the bench swaps in plain Bokeh
        self._drawings = drawings
        self.name = spec.name
        self.title = spec.full_title
        self.figure = None
        self.marks: tuple[Mark, ...] = ()  # shaded once the figure exists, if its x is time
        self.sources: dict[str, ColumnDataSource] = {}  # series (or "main") -> its source
        self.updates = 0
        self._last: pd.DataFrame | None = None
        self._window_ms = (table_for(spec.table, "stream").window_seconds or 0) * 1000
        # the CSS classes go on a wrapper: a Bokeh pane does not put them in the DOM
        self.pane = pn.Column(sizing_mode="stretch_width", height=CHART_HEIGHT + 10,
                              css_classes=["chart", f"chart-{spec.name}"])

    @property
    def built(self) -> bool:
        return self.figure is not None

    def ensure(self) -> Chart:
        if self.figure is None:
            empty = empty_view(self.spec)

            def draw():
                return self._render(self.spec, _placeholder(empty, self.spec))

            self.figure = (draw() if self._drawings is None
                           else self._drawings.figure((self._render, self.spec), draw))
            self._time_x = empty[self.spec.x].dtype.kind == "M"
            self._numeric_x = not self._time_x and empty[self.spec.x].dtype.kind in "iuf"
            for r in self.figure.renderers:
                data = r.data_source.data
                key = str(data[self.spec.by][0]) if self.spec.kind == "line" else "main"
                self.sources.setdefault(key, r.data_source)
                if self._time_x and self.spec.kind == "bar" and self._window_ms:
                    # a bar spans its window: [window_start, window_start + window)
                    r.glyph.x = dodge(self.spec.x, self._window_ms / 2)
                    r.glyph.width = self._window_ms * 0.9
            if self._time_x:
                for mark in self.marks:
                    _shade(self.figure, mark)
            self._fill(empty)
            self.pane.objects = [pn.pane.Bokeh(self.figure, sizing_mode="stretch_width",
                                               height=CHART_HEIGHT)]
        return self

    def update(self, df: pd.DataFrame) -> bool:
        """Send `df` to the browser unless it equals the last frame sent; True if sent."""
        self.ensure()
        if self._last is not None and df.equals(self._last):
            return False
        self._fill(df)
        self._last = df
        self.updates += 1
        return True

    # ------------------------------------------------------------------ in place
    def _fill(self, df: pd.DataFrame) -> None:
        spec, fig = self.spec, self.figure
        for key, source in self.sources.items():
            rows = df if key == "main" else df[df[spec.by].astype(str) == key]
            source.data = {c: (self._offsets(rows) if c == "xoffsets" else _column(rows[c]))
                           for c in source.data}
        factors = self._factors(df)
        if not factors and spec.by and spec.kind != "line":
            pass  # nested factors stay nested: an empty list would make the range one-level
        elif isinstance(fig.x_range, FactorRange):
            fig.x_range.factors = factors
        elif isinstance(fig.y_range, FactorRange):
            fig.y_range.factors = factors[::-1]  # flip_yaxis: the first row on top
        value = fig.x_range if spec.kind == "barh" else fig.y_range
        value.start, value.end = _value_span(df[spec.y])
        if spec.kind != "barh" and not isinstance(fig.x_range, FactorRange):
            span = self._x_span(df[spec.x])
            if span is not None:
                fig.x_range.start, fig.x_range.end = span

    def _offsets(self, df: pd.DataFrame) -> list:
        return list(zip(df[self.spec.x].astype(str), df[self.spec.by].astype(str), strict=True))

    def _factors(self, df: pd.DataFrame) -> list:
        if self.spec.by and self.spec.kind != "line":
            return self._offsets(df)
        return list(dict.fromkeys(df[self.spec.x].astype(str)))

    def _x_span(self, x: pd.Series) -> tuple[float, float] | None:
        if x.empty:
            return None
        if self._numeric_x:
            return float(x.min()) - 0.6, float(x.max()) + 0.6
        return _time_span(x, self._window_ms if self.spec.kind == "bar" else 0,
                          max(3 * self._window_ms, 10 * 60_000))


def _value_span(y: pd.Series) -> tuple[float, float]:
    """0 .. the largest value (+8% head room); 0 .. 1 without data."""
    top = float(y.max()) if len(y) and y.notna().any() else 0.0
    return 0.0, (top * 1.08 if top > 0 else 1.0)


def _time_span(x: pd.Series, width_ms: float, min_ms: float) -> tuple[float, float]:
    """The data's time extent (+ the last window's width), at least `min_ms`, padded 3%, as
    epoch milliseconds (what a Bokeh datetime range holds)."""
    # only the ends are converted (pd.to_datetime of the column: 0.5-1.8 ms a chart)
    lo, hi = pd.Timestamp(x.min()).value / 1e6, pd.Timestamp(x.max()).value / 1e6 + width_ms
    if hi - lo < min_ms:
        mid = (lo + hi) / 2
        lo, hi = mid - min_ms / 2, mid + min_ms / 2
    pad = (hi - lo) * 0.03
    return lo - pad, hi + pad



