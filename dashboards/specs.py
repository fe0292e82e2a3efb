"""Every chart and KPI of the dashboard, declared once.

A `ChartSpec` says which table a chart reads, the view that turns the table's rows into
the frame it shows, and how hvplot draws that frame (kind, x, y, by, title). From these
declarations come the charts (`dashboards.charts`), the tables a refresh reads for the
open tab (`tables_for`), the CSS class the browser tests find a chart by (`chart-<name>`)
and the title, which names the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from dashboards import views as v
from dashboards.reader import Snapshot
from shared.events import PAGES

ACCENT = "#0b6e4f"
BLUE = "#30a2da"


@dataclass(frozen=True)
class ChartSpec:
    name: str  # CSS class `chart-<name>`
    table: str  # the one table (base name) its view reads
    view: Callable[[Snapshot], pd.DataFrame]
    kind: str  # hvplot kind: "bar", "barh" or "line" (a datetime x makes bars span windows)
    x: str
    y: str
    title: str  # the table's name is appended
    by: str | None = None  # one series per value of this column...
    by_values: tuple[str, ...] = ()  # ...fixed, so a refresh never adds a renderer
    hover: tuple[tuple[str, str], ...] = ()  # more (column, numeral format) in the tooltip
    y_format: str | None = None  # numeral format of y on the axis and in the tooltip
    color: str = BLUE

    @property
    def full_title(self) -> str:
        return f"{self.title} ({self.table})"


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("funnel", "sessions", v.funnel, "barh", "stage", "sessions",
              "Conversion funnel", hover=(("share", "0.0%"),), color=ACCENT),
    ChartSpec("devices", "device_distribution", v.device_distribution, "bar", "device_type",
              "page_views", "Page views by device", color=ACCENT),
    ChartSpec("page-views-time", "time_agg", v.page_views_over_time, "line", "time",
              "page_views", "Page views over time", by="page", by_values=PAGES),
    ChartSpec("page-views-page", "time_agg", v.page_views_per_page, "bar", "page",
              "page_views", "Page views per page", color=ACCENT),
    ChartSpec("site-views", "website_views", v.site_views_over_time, "bar", "time",
              "page_views", "Site page views per hour", color=ACCENT),
    ChartSpec("revenue-time", "revenue_hourly", v.revenue_over_time, "bar", "time", "revenue",
              "Revenue per hour, $", hover=(("purchases", "0,0"),), y_format="$0,0.[00]",
              color=ACCENT),
    ChartSpec("top-views", "product_views", v.top_viewed, "bar", "product_id", "views",
              "Top products by views"),
    ChartSpec("top-cart", "product_cart_additions", v.top_carted, "bar", "product_id",
              "cart_additions", "Top products by cart additions"),
    ChartSpec("top-purchases", "product_purchases", v.top_purchased, "bar", "product_id",
              "purchases", "Top products by purchases"),
    ChartSpec("top-revenue", "product_purchases", v.top_revenue, "bar", "product_id",
              "revenue", "Top products by revenue, $", y_format="$0,0.[00]", color=ACCENT),
    ChartSpec("atc-rate", "product_actions", v.product_add_to_cart_rate, "bar", "product_id",
              "add_to_cart_rate", "Add-to-cart rate of the most viewed products",
              hover=(("views", "0,0"), ("add_to_cart", "0,0")), y_format="0.0%"),
    ChartSpec("campaign-events", "campaign_events", v.campaign_events, "bar", "utm_campaign",
              "events", "Events per campaign"),
    ChartSpec("campaign-actions", "campaign_actions", v.campaign_actions, "bar",
              "utm_campaign", "actions", "Add-to-cart and purchases per campaign", by="action",
              by_values=v.CAMPAIGN_ACTIONS),
    ChartSpec("campaign-conversion", "campaign_conversion", v.campaign_conversion, "bar",
              "utm_campaign", "conversion_rate", "Session conversion per campaign",
              hover=(("sessions", "0,0"), ("converted", "0,0")), y_format="0.0%", color=ACCENT),
    ChartSpec("duration", "agg_duration", v.avg_duration_per_page, "bar", "page",
              "avg_duration_s", "Average time on page, s", y_format="0.0", color=ACCENT),
    ChartSpec("session-events", "sessions", v.session_event_histogram, "bar", "events",
              "sessions", "Sessions by events per session (30 = 30 or more)"),
    ChartSpec("quality-time", "data_quality", v.quality_over_time, "line", "time", "count",
              "Events and duplicates over time", by="series", by_values=("events", "duplicates")),
)
SPECS: dict[str, ChartSpec] = {s.name: s for s in CHARTS}

TABLE_TAB = "Table rows"
#: tab label -> its charts, in layout order (two per row); only the open tab is read
TABS: dict[str, tuple[str, ...]] = {
    "Overview": ("funnel", "devices", "page-views-time", "page-views-page", "site-views",
                 "revenue-time"),
    "Products": ("top-views", "top-cart", "top-purchases", "top-revenue", "atc-rate"),
    "Campaigns": ("campaign-events", "campaign-actions", "campaign-conversion", "duration"),
    "Sessions & quality": ("session-events", "quality-time"),
    TABLE_TAB: (),
}

#: KPI -> (label, format); the label says what is counted over the selected range
KPIS: dict[str, tuple[str, str]] = {
    "events_per_minute": ("Events / minute with data", "{:,.1f}"),
    "sessions": ("Sessions in range", "{:,}"),
    "conversion_rate": ("Sessions converted", "{:.2%}"),
    "revenue": ("Revenue in range", "${:,.2f}"),
    "invalid": ("Invalid events", "{:,}"),
    "late": ("Late events dropped", "{:,}"),
    "duplicates": ("Duplicates dropped", "{:,}"),
}


def format_kpis(k: dict) -> dict[str, str]:
    """KPI name -> the text shown in the header (what the browser test reads)."""
    return {name: "—" if k.get(name) is None else spec.format(k[name])
            for name, (_, spec) in KPIS.items()}


def tables_for(charts: Iterable[str], extra: Iterable[str] = ()) -> set[str]:
    """The tables a refresh reads to show `charts`: theirs, the KPIs' and `extra`."""
    return {SPECS[name].table for name in charts} | set(v.KPI_TABLES) | set(extra)
