"""JSON lines straight from the walk: a session's events encoded as they are completed.

`clickstream simulate` turns each event into one JSON line. The row path builds a full
event tuple (`rows.complete_session`), then a dict of it, then asks orjson for the bytes:
per event, about two thirds of a worker's time. Here a session's events go from the walk's
partial tuples to text in one generated loop, and what all of them share is encoded once
per session:

- the session's constants (user, session, source, device, geo, variant) and the keys
  between them become a few *glue* strings, each made by orjson from the fields it holds
  (`orjson.dumps({...})[1:-1]`), so their escaping is orjson's own;
- the walk's fields that repeat from event to event (page, action, url, product,
  category, element; price, quantity, order, revenue, logged in) are written a run of
  neighbouring fields at a time, from a cache of each run's text keyed by its values;
  strings in it come from a cache of their JSON text, filled by orjson;
- integers are written by Python's `str` (what orjson writes for an int), booleans and
  nulls as literals; both timestamps from the event's minute ('YYYY-MM-DDTHH:MM:',
  cached) and a table of the 60,000 'SS.mmmZ' endings of a minute.

The line of each event is exactly the bytes of `wire.RowEncoder` for its row (a test
checks them against the row path over clean and noisy streams). The loop also draws each
event's collector latency, in the order `Simulator._session` does, so the generator
advances exactly as for the rows. Only version 1 is encoded here; `VersionedEncoder`'s
other versions build the rows and encode them (`RowLines`).
"""

from __future__ import annotations

import time

import orjson

from services.simulator.rows import PARTIAL_FIELDS, PARTIAL_TS, SESSION_FIELDS, complete_session
from services.simulator.versions import VersionedEncoder
from shared.events import FIELDS, SCHEMA_VERSION, Kind

MINUTE_MS = 60_000
# 'SS.mmmZ' for each millisecond of a minute: one look-up per timestamp (also the CSV days')
_MILLIS = [f"{ms:03d}Z" for ms in range(1000)]
IN_MINUTE = tuple(s + ms for s in [f"{s:02d}." for s in range(60)] for ms in _MILLIS)
_MINUTES_CACHED = 4096
_STRINGS_CACHED = 1 << 16


class _JsonText(dict):
    """value -> its JSON text (str), made by orjson on a miss; `None` -> `null`."""

    __slots__ = ()

    def __init__(self):
        super().__init__({None: "null"})

    def __missing__(self, value):
        text = orjson.dumps(value).decode()
        if len(self) < _STRINGS_CACHED:  # catalogue strings repeat; order ids do not
            self[value] = text
        return text


class _Minutes(dict):
    """epoch minute -> 'YYYY-MM-DDTHH:MM:' (UTC), made on a miss."""

    __slots__ = ()

    def __missing__(self, minute):
        if len(self) > _MINUTES_CACHED:
            self.clear()
        text = self[minute] = minute_text(minute)
        return text


def minute_text(minute: int) -> str:
    """'YYYY-MM-DDTHH:MM:' (UTC) of an epoch minute: with `IN_MINUTE[ms]`, a timestamp's
    text on the wire and in CSV."""
    return time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))


# Drawn anew for nearly every event (a click's coordinates): written as they are, while
# the other partial fields are written in runs whose text is cached (`_groups`)
_PER_EVENT = {"position_x", "position_y"}
_RUNS_CACHED = 1 << 15  # per run; its keys with an order id repeat only across duplicates


def _value(f) -> str:
    """The f-string replacement field of event field `f` (its local name: its field
    name): a string's cached JSON text, `true`/`false`, `null` or the integer."""
    name = f.name
    if f.kind is Kind.STRING:
        return f"{{TEXT[{name}]}}"
    if f.kind is Kind.BOOL:
        return f"{{BOOL[{name}]}}"
    if f.nullable:
        return f"{{NULL if {name} is None else {name}}}"
    return f"{{{name}}}"


def _fstring_text(text: str) -> str:
    """`text` as the literal part of a single-quoted f-string."""
    return (text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
            .replace("{", "{{").replace("}", "}}"))


class _Line:
    """The parts of a generated f-string: literal JSON text and replacement fields."""

    def __init__(self):
        self.parts: list[str] = []
        self._text: list[str] = []

    def text(self, text: str) -> None:
        self._text.append(text)

    def field(self, field: str) -> None:
        if self._text:
            self.parts.append(_fstring_text("".join(self._text)))
            self._text.clear()
        self.parts.append(field)

    def fstring(self) -> str:
        self.field("")
        return "f'" + "".join(self.parts) + "'"


def _groups():
    """The event fields in declaration order, grouped as the line writes them: (kind,
    fields) with kind `session` (a run of session constants: encoded once per session),
    `run` (a run of partial fields: cached text) or the field's own name."""
    session_fields, partial_fields = set(SESSION_FIELDS), set(PARTIAL_FIELDS)
    groups: list[tuple[str, list]] = []
    for f in FIELDS:
        if f.name in session_fields:
            kind = "session"
        elif (f.name in partial_fields and f.name not in _PER_EVENT
              and f.kind is not Kind.TIMESTAMP):
            kind = "run"
        else:
            kind = f.name
        if groups and groups[-1][0] == kind and kind in ("session", "run"):
            groups[-1][1].append(f)
        else:
            groups.append((kind, [f]))
    return groups


def _key(f) -> str:
    return orjson.dumps(f.name).decode() + ":"


def _compile_session_lines():
    """The source of `session_lines(append, partial, session, rand, lat)`, which appends
    (sent_at, line) for each event of a session (the line as UTF-8 bytes, newline included),
    and of the functions that make the text of a run of partial fields on a cache miss."""
    partial_at = {name: i for i, name in enumerate(PARTIAL_FIELDS)}
    line, per_session, per_event, helpers = _Line(), [], [], []
    line.text("{")
    first = True
    for kind, fields in _groups():
        sep = "" if first else ","
        first = False
        if kind == "session":
            # as orjson writes these fields inside the object: their own escaping
            g = f"g{len(per_session)}"
            items = ", ".join(f"{f.name!r}: {f.name}" for f in fields)
            per_session.append(f"    {g} = {sep!r} + dumps({{{items}}})[1:-1].decode()")
            line.field(f"{{{g}}}")
            continue
        if kind == "run":
            if len(fields) == 1:  # nothing to gain from a cache
                per_event.append(f"        {fields[0].name} = e[{partial_at[fields[0].name]}]")
                line.text(sep + _key(fields[0]))
                line.field(_value(fields[0]))
                continue
            at = sorted(partial_at[f.name] for f in fields)
            if at != list(range(at[0], at[-1] + 1)):
                raise RuntimeError(f"fields {[f.name for f in fields]} are written together, "
                                   "so they must be neighbours in PARTIAL_FIELDS")
            r = f"r{len(helpers)}"
            run = _Line()
            for i, f in enumerate(fields):
                run.text(("," if i else "") + _key(f))
                run.field(_value(f))
            helpers.append("\n".join([
                f"def make_{r}(key):",
                f"    ({', '.join(PARTIAL_FIELDS[at[0]:at[-1] + 1])},) = key",
                f"    text = {sep!r} + {run.fstring()}",
                f"    if len(CACHE_{r}) < {_RUNS_CACHED}:",
                f"        CACHE_{r}[key] = text",
                "    return text",
                "",
            ]))
            per_event += [f"        key = e[{at[0]}:{at[-1] + 1}]",
                          f"        {r} = CACHE_{r}.get(key) or make_{r}(key)"]
            line.field(f"{{{r}}}")
            continue
        (f,) = fields
        line.text(sep + _key(f))
        if kind == "schema_version":
            line.text(orjson.dumps(SCHEMA_VERSION).decode())
        elif kind == "event_id":  # `"<session id>-` (orjson's escaping), the index, a quote
            line.field("{eid}{k}")
            line.text('"')
        elif kind == "timestamp":  # both timestamps from the event's minute (see below)
            line.text('"')
            line.field("{minute}{IN_MINUTE[ms]}")
            line.text('"')
        elif kind == "sent_at":
            line.text('"')
            line.field("{sent_text}")
            line.text('"')
        elif kind == "page_duration_ms":
            line.field("{nts - timestamp}")
        elif kind in partial_at:
            per_event.append(f"        {kind} = e[{partial_at[kind]}]")
            line.field(_value(f))
        else:
            raise RuntimeError(f"event field {kind!r} has no source in the line encoder")
    line.text("}\n")
    return "\n".join([
        *helpers,
        "def session_lines(append, partial, session, rand, lat):",
        f"    ({', '.join(SESSION_FIELDS)},) = session",
        *per_session,
        "    eid = dumps(session_id + '-')[:-1].decode()",
        "    n = len(partial)",
        f"    nts = partial[0][{PARTIAL_TS}]",
        "    for k in range(n):",
        "        e = partial[k]",
        f"        timestamp = e[{PARTIAL_TS}]",
        "        if k + 1 < n:",
        f"            nts = partial[k + 1][{PARTIAL_TS}]",
        # the collector's latency, drawn as Simulator._session draws it
        "        x = rand() * 1024.0",
        "        i = int(x)",
        "        latency = int(lat[i] + (x - i) * (lat[i + 1] - lat[i]))",
        # the event's minute and its ms in it; the collector's time is nearly always in
        # the same minute
        f"        m = timestamp // {MINUTE_MS}",
        f"        ms = timestamp - m * {MINUTE_MS}",
        "        minute = MINUTES[m]",
        "        sent_ms = ms + latency",
        f"        if sent_ms < {MINUTE_MS}:",
        "            sent_text = minute + IN_MINUTE[sent_ms]",
        "        else:",
        f"            m, sent_ms = divmod(timestamp + latency, {MINUTE_MS})",
        "            sent_text = MINUTES[m] + IN_MINUTE[sent_ms]",
        *per_event,
        f"        append((timestamp + latency, {line.fstring()}.encode()))",
        "",
    ])


_SOURCE = _compile_session_lines()


class SessionLines:
    """Version 1 lines of whole sessions (`session`), and of single rows (`line`: what
    noise changes, and bots); both exactly `VersionedEncoder("1")`'s bytes and a newline
    (joined by the caller in one copy)."""

    def __init__(self):
        self.row = VersionedEncoder(str(SCHEMA_VERSION))
        namespace = {"dumps": orjson.dumps, "TEXT": _JsonText(), "MINUTES": _Minutes(),
                     "IN_MINUTE": IN_MINUTE, "NULL": "null", "BOOL": ("false", "true")}
        namespace.update({f"CACHE_r{i}": {} for i in range(_SOURCE.count("def make_r"))})
        exec(compile(_SOURCE, "<session_lines>", "exec"), namespace)
        self.session = namespace["session_lines"]

    def line(self, row: tuple) -> bytes:
        """The line of one event row or malformed marker."""
        return self.row(row) + b"\n"


class RowLines:
    """The same interface for any `--schema-version` mode: the rows are built
    (`complete_session`) and encoded one by one."""

    line = SessionLines.line

    def __init__(self, mode: str):
        self.row = VersionedEncoder(mode)
        event = self.row.event

        def session(append, partial, session, rand, lat):
            rows: list[tuple] = []
            sent = []
            for e in partial:
                x = rand() * 1024.0
                i = int(x)
                sent.append(e[PARTIAL_TS] + int(lat[i] + (x - i) * (lat[i + 1] - lat[i])))
            complete_session(rows.append, partial, session, sent)
            for row, s in zip(rows, sent, strict=True):
                append((s, event(row) + b"\n"))

        self.session = session


def line_encoder(mode: str):
    """The fastest line encoder for a `--schema-version` mode."""
    return SessionLines() if mode == str(SCHEMA_VERSION) else RowLines(mode)
