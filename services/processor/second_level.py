"""The stream's second level: `funnel_hourly` and `campaign_conversion` kept exact from the
sessions each micro-batch touches, instead of recomputed from a whole day's sessions.

Both tables roll up the same cells (`aggregates.CELL_KEYS`: day, a session's start hour,
campaign, source; `CELL_SUMS`: sessions, stages reached, conversions, revenue). The driver
holds the cells of the days it has seen -- a few hundred small entries a day -- and every
micro-batch adds the change of its touched sessions: the cells of their new rows minus the
cells of their old ones, both folded from the stored pieces (`Router._fold_sessions*`).
Then it upserts the rows of the cells that changed, and deletes a row whose sessions fell
to 0 (a session whose late event moved its start to an earlier hour leaves its old hour).

Why exact, replay included: the cells of a day are loaded, the first time a micro-batch
touches it and before that micro-batch writes anything, from the day's stored pieces --
what the old rows are folded from too. So the held cells are always those of the stored
pieces; a restarted job reloads them and its replayed micro-batch adds the change from what
was stored. A micro-batch that fails drops them all (`forget`), to be reloaded.

Before 2026-12-05 both tables were recomputed from the touched days' stored sessions in a
background thread: at 5k events/s that refresh took 9.6-11.4 s after 30 minutes and slowed
the micro-batches it overlapped (README, "Benchmarks").
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from services.processor import aggregates as ag
from services.processor import local_rows
from shared import tables as tb

log = logging.getLogger(__name__)

Cells = dict[tuple, list[int]]  # CELL_KEYS (hour as epoch microseconds) -> CELL_SUMS


def collect_cells(cells: DataFrame) -> Cells:  # noqa: F821
    """An `aggregates.session_cells` DataFrame, collected (window_start as epoch micros)."""
    from pyspark.sql import functions as F

    rows = cells.withColumn(tb.WINDOW_START, F.unix_micros(tb.WINDOW_START)).collect()
    return {tuple(r[k] for k in ag.CELL_KEYS): [r[s] for s in ag.CELL_SUMS] for r in rows}


def change(old: list[dict], new: list[dict]) -> Cells:
    """The cells of `new` sessions rows minus those of `old` (dicts, as driver rows)."""
    out: Cells = {}
    for rows, sign in ((old, -1), (new, 1)):
        for r in rows:
            key, sums = local_rows.session_cell(r)
            cell = out.setdefault(key, [0] * len(ag.CELL_SUMS))
            for i, v in enumerate(sums):
                cell[i] += sign * v
    return out


class SecondLevel:
    """The cells of the days seen, and the rows they give. `read_pieces(days)`: a Spark
    DataFrame of the stored `session_partials` rows of `days`; the sink needs `write_rows`
    and `delete_rows`."""

    def __init__(self, sink, read_pieces: Callable[[list[dt.date]], DataFrame],  # noqa: F821
                 suffix: str = "", days_kept: int = 3):
        self.sink = sink
        self.read_pieces = read_pieces
        self.suffix = suffix
        self.days_kept = days_kept  # the most recently touched; an older one is reloaded
        self.days: dict[dt.date, Cells] = {}

    def load(self, days) -> None:
        """Hold the cells of `days`: call before the micro-batch writes anything."""
        missing = sorted(set(days) - set(self.days))
        if missing:
            t0 = time.monotonic()
            cells = ag.session_cells(ag.fold_sessions(self.read_pieces(missing)))
            for d in missing:
                self.days[d] = {}
            for key, sums in collect_cells(cells).items():
                self.days[key[0]][key] = sums
            log.info("second level: the cells of %d day(s) loaded in %.1fs", len(missing),
                     time.monotonic() - t0)
        for d in set(days):  # most recently touched last
            self.days[d] = self.days.pop(d)
        for d in list(self.days)[:-max(self.days_kept, len(set(days)))]:
            del self.days[d]

    def forget(self) -> None:
        self.days.clear()

    def apply(self, delta: Cells) -> None:
        """Add a micro-batch's change (its days `load`ed) and write the rows it changes."""
        changed = set()
        for key, d in delta.items():
            if any(d):
                cell = self.days[key[0]].setdefault(key, [0] * len(ag.CELL_SUMS))
                for i, v in enumerate(d):
                    cell[i] += v
                changed.add(key)
        for name, columns in ag.SECOND_LEVEL.items():
            table = tb.table(name)
            n = len(table.primary_key)
            totals: dict[tuple, list[int]] = {k[:n]: [0] * len(ag.CELL_SUMS) for k in changed}
            for day in {k[0] for k in changed}:
                for key, sums in self.days[day].items():
                    if key[:n] in totals:
                        total = totals[key[:n]]
                        for i, v in enumerate(sums):
                            total[i] += v
            rows, gone = [], []
            for key, total in totals.items():
                row = dict(zip(table.primary_key, key, strict=True))
                row[tb.WINDOW_START] = local_rows.EPOCH + dt.timedelta(
                    microseconds=row[tb.WINDOW_START])
                if total[0] == 0:  # no session: no row
                    gone.append(row)
                    continue
                for col, cell in columns.items():
                    row[col] = total[ag.CELL_SUMS.index(cell)]
                rows.append(row)
            self.sink.write_rows(name + self.suffix, rows)
            self.sink.delete_rows(name + self.suffix, gone)
        for key in changed:
            if self.days[key[0]][key][0] == 0:
                del self.days[key[0]][key]
