"""The dashboard's charts: Bokeh figures built once, updated in place.

Each `Chart` owns one Bokeh figure and its `ColumnDataSource`s. A refresh calls
`chart.update(df)`, which replaces the sources' `.data` (and the category axis' factors)
only when the frame differs from the last one sent: nothing is re-planned or rebuilt, so a
refresh costs a few data patches instead of a HoloViews redraw of 17 plots.

Kinds: `bars` (categorical x, one or more y side by side), `hbars` (categorical y),
`time_bars` (hourly windows as bars on a datetime axis: readable with one window, as a
line through one point is not), `lines` (datetime x, one line per column),
`num_bars` (numeric x, e.g. a histogram).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import (
    ColumnDataSource,
    FactorRange,
    HoverTool,
    Legend,
    LegendItem,
    NumeralTickFormatter,
    Range1d,
)
from bokeh.plotting import figure
from bokeh.transform import dodge

ACCENT = "#0b6e4f"
BLUE = "#30a2da"
PALETTE = (BLUE, "#fc4f30", "#e5ae38", "#6d904f", "#8b8b8b", "#9467bd", "#8c564b", "#17becf",
           "#e377c2", "#bcbd22")  # ten distinct series colours
CHART_HEIGHT = 280
HOUR_MS = 3_600_000
TOOLS = "save"


def _columns(df: pd.DataFrame, cols: Sequence[str]) -> dict[str, np.ndarray | list]:
    out = {}
    for c in cols:
        s = df[c]
        out[c] = s.astype(str).tolist() if s.dtype == object else s.to_numpy()
    return out


class Chart:
    """A titled chart in a Panel pane; `update(df)` patches its data in place.

    The Bokeh figure is built on first use (`figure`, `update`), not with the Chart:
    a figure is ~30 Bokeh models, and the charts of tabs nobody opened cost nothing.
    """

    def __init__(self, name: str, title: str, build: Callable[[], Built],
                 height: int = CHART_HEIGHT):
        self.name = name
        self.title = title
        self.height = height
        self._build = build
        self._built: Built | None = None
        self._last: pd.DataFrame | None = None
        self.updates = 0
        # the CSS classes go on a wrapper: a Bokeh pane does not put them in the DOM
        self.pane = pn.Column(sizing_mode="stretch_width", height=height + 10,
                              css_classes=["chart", f"chart-{name}"])

    @property
    def built(self) -> bool:
        return self._built is not None

    def ensure(self) -> Built:
        if self._built is None:
            self._built = self._build()
            self.pane.objects = [pn.pane.Bokeh(self._built.figure, sizing_mode="stretch_width",
                                               height=self.height)]
        return self._built

    @property
    def figure(self):
        return self.ensure().figure

    @property
    def sources(self) -> dict[str, ColumnDataSource]:
        return self.ensure().sources

    def update(self, df: pd.DataFrame) -> bool:
        """Send `df` to the browser unless it equals the last frame sent; True if sent."""
        b = self.ensure()
        if self._last is not None and df.equals(self._last):
            return False
        if b.factors is not None:
            values = [str(v) for v in df[b.factor_column]]
            b.factors.factors = values[::-1] if b.reverse else values
        for key, data in b.fill(df).items():
            b.sources[key].data = data
        if b.bounds is not None:
            # explicit ranges: Bokeh's auto ranges kept the old extent after new data came
            for axis, span in b.bounds(df).items():
                if span is not None:
                    rng = b.figure.x_range if axis == "x" else b.figure.y_range
                    rng.start, rng.end = span
        self._last = df
        self.updates += 1
        return True


@dataclass
class Built:
    """What a chart's builder makes: the figure, its sources, how a frame fills them and
    the category range (if any) whose factors follow the frame's `factor_column`."""

    figure: object
    sources: dict[str, ColumnDataSource]
    fill: Callable[[pd.DataFrame], dict]
    factors: FactorRange | None = None
    factor_column: str | None = None
    reverse: bool = False
    #: df -> {"x": (start, end) | None, "y": ...}: explicit axis ranges for a frame
    bounds: Callable[[pd.DataFrame], dict] | None = None


def _top(df: pd.DataFrame, cols: Sequence[str]) -> tuple[float, float]:
    """0 .. the largest value (+8% head room); 0 .. 1 without data."""
    values = [float(df[c].max()) for c in cols if len(df) and df[c].notna().any()]
    top = max(values, default=0.0)
    return 0.0, (top * 1.08 if top > 0 else 1.0)


def _ms(values: pd.Series) -> tuple[float, float] | None:
    """First and last time as epoch milliseconds (what a Bokeh datetime range holds)."""
    if values.empty:
        return None
    t = pd.to_datetime(values)
    return t.min().value / 1e6, t.max().value / 1e6


def _time_span(df: pd.DataFrame, x: str, width_ms: float = 0.0,
               min_ms: float = 3_600_000) -> tuple[float, float] | None:
    """The data's time extent (+ the last window's width), at least `min_ms`, padded 3%."""
    span = _ms(df[x])
    if span is None:
        return None
    lo, hi = span[0], span[1] + width_ms
    if hi - lo < min_ms:
        mid = (lo + hi) / 2
        lo, hi = mid - min_ms / 2, mid + min_ms / 2
    pad = (hi - lo) * 0.03
    return lo - pad, hi + pad


def _figure(title: str, height: int, **kw):
    fig = figure(title=title, height=height, sizing_mode="stretch_width", tools=TOOLS,
                 toolbar_location="above", **kw)
    fig.toolbar.logo = None
    fig.grid.grid_line_alpha = 0.4
    fig.title.text_font_size = "11pt"
    return fig


def _hover(fig, renderers, tooltips, **kw) -> None:
    fig.add_tools(HoverTool(renderers=list(renderers), tooltips=tooltips, **kw))


def _legend(fig, items: list[tuple[str, list]]) -> None:
    legend = Legend(items=[LegendItem(label=label, renderers=r) for label, r in items],
                    click_policy="hide", label_text_font_size="9pt", spacing=0, padding=4)
    fig.add_layout(legend, "right")


def _fmt(y: str, fmt: str | None) -> str:
    """A hover field: `@{column}{format}` (thousands separators by default)."""
    return "@{" + y + "}{" + (fmt or "0,0") + "}"


def bars(name: str, title: str, x: str, ys: Sequence[str], *,
         labels: Sequence[str] | None = None, color: str = BLUE, hover: Sequence[str] = (),
         y_label: str = "", y_format: str | None = None, height: int = CHART_HEIGHT) -> Chart:
    """Vertical bars per category of `x`; several `ys` are drawn side by side."""
    ys = list(ys)
    cols = [x, *ys, *hover]

    def build() -> Built:
        factors = FactorRange(factors=[])
        fig = _figure(title, height, x_range=factors, y_range=Range1d(0, 1))
        source = ColumnDataSource({c: [] for c in cols})
        width = 0.8 / len(ys)
        renderers = []
        for i, y in enumerate(ys):
            offset = (i - (len(ys) - 1) / 2) * width
            renderers.append(fig.vbar(x=dodge(x, offset, range=factors), top=y,
                                      width=width * 0.95, source=source,
                                      color=color if len(ys) == 1 else PALETTE[i]))
        if len(ys) > 1:
            _legend(fig, [(label, [r]) for label, r in zip(labels or ys, renderers, strict=True)])
        _hover(fig, renderers, [(x, f"@{{{x}}}"), *((y, _fmt(y, y_format)) for y in ys),
                                *((h, _fmt(h, None)) for h in hover)])
        fig.xaxis.major_label_orientation = 0.5
        fig.xgrid.grid_line_color = None
        fig.yaxis.axis_label = y_label or (ys[0] if len(ys) == 1 else "")
        if y_format:
            fig.yaxis.formatter = NumeralTickFormatter(format=y_format)
        return Built(fig, {"main": source}, lambda df: {"main": _columns(df, cols)}, factors, x,
                     bounds=lambda df: {"y": _top(df, ys)})

    return Chart(name, title, build, height)


def hbars(name: str, title: str, y: str, x: str, *, color: str = ACCENT,
          hover: Sequence[tuple[str, str]] = (), height: int = CHART_HEIGHT) -> Chart:
    """Horizontal bars, categories top to bottom in the frame's order."""
    cols = [y, x, *(c for c, _ in hover)]

    def build() -> Built:
        factors = FactorRange(factors=[])
        fig = _figure(title, height, y_range=factors, x_range=Range1d(0, 1))
        source = ColumnDataSource({c: [] for c in cols})
        r = fig.hbar(y=y, right=x, height=0.8, source=source, color=color)
        _hover(fig, [r], [(y, f"@{{{y}}}"), (x, _fmt(x, None)),
                          *((c, _fmt(c, fmt)) for c, fmt in hover)])
        fig.ygrid.grid_line_color = None
        fig.xaxis.axis_label = x
        return Built(fig, {"main": source}, lambda df: {"main": _columns(df, cols)}, factors, y,
                     reverse=True,  # Bokeh draws the first factor at the bottom
                     bounds=lambda df: {"x": _top(df, [x])})

    return Chart(name, title, build, height)


def time_bars(name: str, title: str, x: str, y: str, *, color: str = ACCENT,
              window_ms: int = HOUR_MS, y_format: str | None = None, hover: Sequence[str] = (),
              height: int = CHART_HEIGHT) -> Chart:
    """One bar per time window on a datetime axis (the bar spans its window)."""
    cols = [x, y, *hover]

    def build() -> Built:
        fig = _figure(title, height, x_axis_type="datetime", x_range=Range1d(0, 1),
                      y_range=Range1d(0, 1))
        source = ColumnDataSource({c: [] for c in cols})
        r = fig.vbar(x=dodge(x, window_ms / 2), top=y, width=window_ms * 0.9, source=source,
                     color=color)
        _hover(fig, [r], [("window", f"@{{{x}}}{{%F %H:%M}}"), (y, _fmt(y, y_format)),
                          *((h, _fmt(h, None)) for h in hover)],
               formatters={f"@{{{x}}}": "datetime"})
        fig.yaxis.axis_label = y
        if y_format:
            fig.yaxis.formatter = NumeralTickFormatter(format=y_format)
        return Built(fig, {"main": source}, lambda df: {"main": _columns(df, cols)},
                     bounds=lambda df: {"x": _time_span(df, x, window_ms, 3 * window_ms),
                                        "y": _top(df, [y])})

    return Chart(name, title, build, height)


def lines(name: str, title: str, x: str, ys: Sequence[str], *, y_label: str = "",
          height: int = CHART_HEIGHT) -> Chart:
    """One line per column of `ys`, with small markers: a series with one point (the first
    minute of a stream) has no line to draw, but must still show."""
    ys = list(ys)

    def build() -> Built:
        fig = _figure(title, height, x_axis_type="datetime", x_range=Range1d(0, 1),
                      y_range=Range1d(0, 1))
        source = ColumnDataSource({c: [] for c in [x, *ys]})
        lines = [fig.line(x=x, y=y, source=source, color=PALETTE[i % len(PALETTE)],
                          line_width=2) for i, y in enumerate(ys)]
        for i, y in enumerate(ys):
            fig.scatter(x=x, y=y, source=source, color=PALETTE[i % len(PALETTE)], size=4)
        if len(ys) > 1:
            _legend(fig, [(y, [line]) for y, line in zip(ys, lines, strict=True)])
        _hover(fig, lines[:1], [("time", f"@{{{x}}}{{%F %H:%M}}"),
                                *((y, _fmt(y, None)) for y in ys)],
               formatters={f"@{{{x}}}": "datetime"}, mode="vline")
        fig.yaxis.axis_label = y_label or (ys[0] if len(ys) == 1 else "")
        return Built(fig, {"main": source}, lambda df: {"main": _columns(df, [x, *ys])},
                     bounds=lambda df: {"x": _time_span(df, x, 0, 10 * 60_000),
                                        "y": _top(df, ys)})

    return Chart(name, title, build, height)


def num_bars(name: str, title: str, x: str, y: str, *, color: str = BLUE,
             height: int = CHART_HEIGHT) -> Chart:
    """Bars over a numeric x (a histogram with unit bins)."""
    def build() -> Built:
        fig = _figure(title, height, x_range=Range1d(0, 1), y_range=Range1d(0, 1))
        source = ColumnDataSource({x: [], y: []})
        r = fig.vbar(x=x, top=y, width=0.8, source=source, color=color)
        _hover(fig, [r], [(x, f"@{{{x}}}"), (y, _fmt(y, None))])
        fig.xaxis.axis_label, fig.yaxis.axis_label = x, y
        fig.xgrid.grid_line_color = None
        def bounds(df: pd.DataFrame) -> dict:
            lo, hi = (float(df[x].min()), float(df[x].max())) if len(df) else (0.0, 1.0)
            return {"x": (lo - 0.6, hi + 0.6), "y": _top(df, [y])}

        return Built(fig, {"main": source}, lambda df: {"main": _columns(df, [x, y])},
                     bounds=bounds)

    return Chart(name, title, build, height)
