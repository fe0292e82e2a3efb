# ruff: noqa: E501 -- the table is easier to read unwrapped
"""Calibration targets: what the simulator's *emergent* statistics should look like.

These are targets, not knobs. The model's knobs (per-step probabilities, dwell times,
source multipliers) live in `services/simulator/model.py` and `world.py`; the statistics below are
measured from a generated sample (`clickstream profile`) and compared against these
numbers by `tests/test_simulator_model.py` (test_simulator_profile_matches_calibration_targets)
with the tolerances given here.

| statistic | target | tolerance | source |
| --- | --- | --- | --- |
| add_to_cart per product-detail view | 0.026 | ±0.006 | RetailRocket e-commerce dataset (Kaggle, 2.76M events, 4.5 months): 69,332 addtocart / 2,664,312 view events = 2.6% |
| purchased items per add_to_cart | 0.32 | ±0.05 | RetailRocket: 22,457 transaction / 69,332 addtocart events = 32%; consistent with Baymard Institute's ~70% average documented cart abandonment rate (meta-study of 49 studies) |
| session conversion (sessions with a purchase) | 0.016 | band 0.015–0.030 | Google Analytics sample dataset for BigQuery (Google Merchandise Store, Aug 2016 – Aug 2017): ~1.6% of sessions have a transaction; the issue accepts the 1.5–3% band |
| share of sessions by returning visitors | 0.85 | ±0.02 | UCI "Online Shoppers Purchasing Intention" dataset (Sakar et al. 2018): 10,551 of 12,330 sessions (85.6%) are Returning_Visitor |
| share of product views on the top 1% of products | 0.30 | band 0.15–0.55 | power-law (Zipf, s≈1) popularity as observed in RetailRocket item views; a design choice, not a measured figure |
| evening peak / night trough of the hourly curve | ≥ 3.0 | — | typical retail traffic shape (peak around 19–21 h, trough around 3–5 h UTC in our single-timezone model); a design choice |

Bot sessions and every other noise source are off by default and excluded from these
targets; the calibration test runs with the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    low: float
    high: float
    source: str

    def holds(self, measured: float) -> bool:
        return self.low <= measured <= self.high


ADD_TO_CART_PER_PRODUCT_VIEW = Target(
    "add_to_cart_per_product_view", 0.026, 0.020, 0.032, "RetailRocket: 69,332 / 2,664,312"
)
PURCHASES_PER_ADD_TO_CART = Target(
    "purchases_per_add_to_cart", 0.32, 0.27, 0.37, "RetailRocket: 22,457 / 69,332; Baymard ~70%"
)
SESSION_CONVERSION = Target(
    "session_conversion", 0.016, 0.015, 0.030, "Google Merchandise Store GA sample: ~1.6%"
)
RETURNING_SHARE = Target(
    "returning_share", 0.85, 0.83, 0.87, "UCI Online Shoppers: 10,551 / 12,330 returning"
)
TOP_1PCT_PRODUCT_VIEW_SHARE = Target(
    "top_1pct_product_view_share", 0.30, 0.15, 0.55, "Zipf popularity (design choice)"
)
PEAK_TO_TROUGH = Target("hourly_peak_to_trough", 4.0, 3.0, 12.0, "retail diurnal shape (design)")

TARGETS: tuple[Target, ...] = (
    ADD_TO_CART_PER_PRODUCT_VIEW,
    PURCHASES_PER_ADD_TO_CART,
    SESSION_CONVERSION,
    RETURNING_SHARE,
    TOP_1PCT_PRODUCT_VIEW_SHARE,
    PEAK_TO_TROUGH,
)
