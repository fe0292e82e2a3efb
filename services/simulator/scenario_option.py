"""`--scenario NAME[@START][+DURATION]`: the grammar, and its click parameter type.

- NAME: one of `scenarios.NAMES`.
- START: an ISO-8601 time (as `--start`: UTC unless it has an offset), or `+OFFSET` after
  the run's start (`+2h`, `+1h30m`). Default: the run's start.
- DURATION: a number and a unit, or several: `90s`, `30m`, `2h`, `1h30m`, `1d`.
  Default: the scenario's own (`scenarios.SCENARIOS[NAME].default_duration_ms`).

A trailing `+DURATION` is always the duration, so `flash-sale@+2h+30m` runs from two hours
after the start for thirty minutes, and a time zone offset stays part of the time:
`flash-sale@2026-01-05T18:00:00+01:00+1h`. The window is widened to whole minutes.

A request is resolved against the run's start (`Request.window`) once the command knows
it: `simulate --start`, `generate`'s first day, `produce`'s start (now by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import click

from services.simulator.scenarios import NAMES, SCENARIOS, Window
from shared.cli import parse_time
from shared.errors import ClickstreamError

GRAMMAR = "NAME[@START][+DURATION]"
_UNIT_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000}
_DURATION = r"(?:\d+[dhms])+"
_SPEC = re.compile(
    rf"(?P<name>[a-z][a-z0-9-]*)(?:@(?P<start>.+?))?(?:\+(?P<duration>{_DURATION}))?")


def parse_duration(text: str) -> int:
    """`30m`, `2h`, `1h30m`, `90s`, `1d` -> milliseconds."""
    if not re.fullmatch(_DURATION, text):
        raise ClickstreamError(f"cannot read duration {text!r}: use e.g. 30m, 2h or 1h30m")
    return sum(int(n) * _UNIT_MS[u] for n, u in re.findall(r"(\d+)([dhms])", text))


@dataclass(frozen=True)
class Request:
    """A parsed `--scenario`: an absolute start, or an offset from the run's start."""

    name: str
    start_ms: int | None  # an absolute time...
    offset_ms: int  # ...or this long after the run's start
    duration_ms: int

    def window(self, run_start_ms: int) -> Window:
        start = self.start_ms if self.start_ms is not None else run_start_ms + self.offset_ms
        return Window(self.name, start, start + self.duration_ms)


def parse_scenario(text: str) -> Request:
    """`NAME[@START][+DURATION]` -> a Request; ClickstreamError says what is wrong."""
    m = _SPEC.fullmatch(text.strip())
    if m is None:
        raise ClickstreamError(
            f"cannot read scenario {text!r}: use {GRAMMAR}, e.g. flash-sale@+2h+30m")
    name, start, duration = m.group("name", "start", "duration")
    if name not in SCENARIOS:
        raise ClickstreamError(f"unknown scenario {name!r}: choose from {', '.join(NAMES)}")
    start_ms, offset_ms = None, 0
    if start is not None:
        if start.startswith("+"):
            offset_ms = parse_duration(start[1:])
        else:
            start_ms = parse_time(start)
    duration_ms = (parse_duration(duration) if duration is not None
                   else SCENARIOS[name].default_duration_ms)
    if duration_ms <= 0:
        raise ClickstreamError(f"scenario {name}: the duration must be > 0, got {duration!r}")
    return Request(name, start_ms, offset_ms, duration_ms)


class ScenarioType(click.ParamType):
    """A click type for `--scenario`: a bad value is a one-line usage error."""

    name = "scenario"

    def convert(self, value, param, ctx):
        if isinstance(value, Request):
            return value
        try:
            return parse_scenario(value)
        except ClickstreamError as e:
            self.fail(str(e), param, ctx)
