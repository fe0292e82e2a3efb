"""Command-line plumbing every command shares: one-line usage errors and time parsing."""

from __future__ import annotations

import datetime as dt

import click

from shared.errors import ClickstreamError

# A fixed default start makes `simulate` and `generate` reproducible byte for byte.
DEFAULT_START = "2026-01-05T00:00:00Z"  # a Monday


class Command(click.Command):
    """A click command whose usage errors are one line (`error: ...`, exit 1)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            hint = f"(see 'clickstream {info_name} --help')"
            raise ClickstreamError(f"{e.format_message()} {hint}") from None


def parse_time(text: str) -> int:
    """ISO-8601 date or time (UTC if no offset) -> epoch ms."""
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ClickstreamError(
            f"cannot read time {text!r}: use ISO-8601, e.g. 2026-01-05 or 2026-01-05T12:00:00Z"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)
