"""The behaviour model's options, shared by the simulator, producer and CSV generator
commands (their usage errors and time parsing are in shared.cli)."""

from __future__ import annotations

import functools

import click

from services.simulator.model import Noise, SimConfig
from services.simulator.scenario_option import GRAMMAR, ScenarioType
from services.simulator.scenarios import NAMES
from shared.errors import ClickstreamError
from shared.events import SCHEMA_VERSION, WIRE_MODES

RATE = click.FloatRange(0.0, 1.0)


def schema_version_option(fn):
    """`--schema-version 1|2|mix`: the event schema the simulated clients send in (a v2
    event is the same event: renamed dwell_ms, amounts in its currency, consent; `mix`
    picks per event by its event_id). Arrives as `schema_version` (a string)."""
    return click.option(
        "--schema-version", "schema_version", type=click.Choice(WIRE_MODES),
        default=str(SCHEMA_VERSION), show_default=True,
        help="Event schema version the clients send: 1, 2 (dwell_ms, amounts in the "
             "visitor's currency, consent), or mix (per event, by its event_id).")(fn)


def model_options(fn):
    """The behaviour model's knobs as options; they arrive as `model=dict(...)`."""
    options = [
        click.option("--returning-share", type=RATE, default=0.85, show_default=True,
                     help="Share of sessions by returning visitors."),
        click.option("--ab-effect", type=click.FloatRange(-0.99, 10.0), default=0.10,
                     show_default=True,
                     help="Relative uplift of A/B variant B on checkout (0.1 = +10%)."),
        click.option("--late-rate", type=RATE, default=0.0, show_default=True,
                     help="Noise: share of events reaching the collector late."),
        click.option("--late-median", type=click.FloatRange(0.001, None), default=120.0,
                     show_default=True, help="Noise: median lateness of a late event, seconds."),
        click.option("--out-of-order-rate", type=RATE, default=0.0, show_default=True,
                     help="Noise: share of events delivered after later ones."),
        click.option("--duplicate-rate", type=RATE, default=0.0, show_default=True,
                     help="Noise: share of events sent twice (same event_id)."),
        click.option("--bot-rate", type=click.FloatRange(0.0, 0.99), default=0.0,
                     show_default=True, help="Noise: share of sessions that are bots."),
        click.option("--malformed-rate", type=RATE, default=0.0, show_default=True,
                     help="Noise: extra malformed payloads per event (not in CSV)."),
        click.option("--scenario", "scenarios", type=ScenarioType(), multiple=True,
                     metavar=GRAMMAR,
                     help=f"Inject a scenario ({', '.join(NAMES)}); repeat to compose. "
                          "START: an ISO-8601 time or +OFFSET after the run's start "
                          "(default: the start); DURATION: e.g. 30m, 2h, 1h30m (default: "
                          "the scenario's). E.g. checkout-outage@+1h+30m."),
    ]

    @functools.wraps(fn)
    def wrapper(*args, returning_share, ab_effect, late_rate, late_median, out_of_order_rate,
                duplicate_rate, bot_rate, malformed_rate, scenarios, **kwargs):
        model = {
            "returning_share": returning_share,
            "ab_effect": ab_effect,
            "noise": Noise(
                late_rate=late_rate,
                late_median_s=late_median,
                out_of_order_rate=out_of_order_rate,
                duplicate_rate=duplicate_rate,
                bot_rate=bot_rate,
                malformed_rate=malformed_rate,
            ),
            "scenarios": scenarios,  # scenario_option.Request, resolved by make_config
        }
        return fn(*args, model=model, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def make_config(seed: int, events_per_second: float, model: dict,
                run_start_ms: int) -> SimConfig:
    """The model's config; `--scenario` offsets count from `run_start_ms`."""
    windows = tuple(r.window(run_start_ms) for r in model.get("scenarios", ()))
    try:
        return SimConfig(seed=seed, events_per_second=events_per_second,
                         **{**model, "scenarios": windows})
    except ValueError as e:
        raise ClickstreamError(str(e)) from None
