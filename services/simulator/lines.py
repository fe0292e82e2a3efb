"""JSON lines straight from the walk: a session's events encoded as they are completed.

`clickstream simulate` turns each event into one JSON line. The row path builds a full
event tuple (`rows.complete_session`), then a dict of it, then asks orjson for the bytes:
per event, about two thirds of a worker's time. Here a session's events go from the walk's
partial tuples to text in one generated loop, and what all of them share is encoded once
per session:

- the session's constants (user, session, source, device, geo, variant) and the keys
  between them become a few *glue* strings, each made by orjson from the fields it holds
  (`orjson.dumps({...})[1:-1]`), so their escaping is orjson's own;
- the per-event strings (page, action, url, product, category, element, order) come from a
  cache of their JSON text, filled by orjson on a miss;
- integers are written by Python's `str` (what orjson writes for an int), booleans and
  nulls as literals; timestamps through a per-minute prefix and a table of the 60,000
  `SS.mmmZ` endings of a minute.

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
# 'SS.mmmZ' for each millisecond of a minute: one look-up per timestamp
_IN_MINUTE = tuple(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(MINUTE_MS))
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
        text = self[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return text


# How each event field is written; the derived ones are `rows._DERIVED`'s
_DERIVED = {"schema_version", "event_id", "sent_at", "page_duration_ms"}


def _value(f) -> tuple[list[str], str]:
    """(statements before the line, the f-string replacement field) of event field `f`,
    whose local name is its field name; timestamps' quotes are left to the caller."""
    name = f.name
    if f.kind is Kind.TIMESTAMP:
        return ([f"    m_{name} = {name} // {MINUTE_MS}",
                 f"    t_{name} = MINUTES[m_{name}] + IN_MINUTE[{name} - m_{name} * {MINUTE_MS}]"],
                f"{{t_{name}}}")
    if f.kind is Kind.STRING:
        return [], f"{{TEXT[{name}]}}"
    if f.kind is Kind.BOOL:
        return [], f"{{BOOL[{name}]}}"
    if f.nullable:
        return [], f"{{NULL if {name} is None else {name}}}"
    return [], f"{{{name}}}"


def _fstring_text(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _compile_session_lines():
    """The generated `session_lines(append, partial, session, rand, lat)`: appends
    (sent_at, line) for each event of a session, line as UTF-8 bytes without newline."""
    session_fields = set(SESSION_FIELDS)
    partial_fields = set(PARTIAL_FIELDS)
    pieces: list[str] = []  # f-string parts of the line, after the session's glue is made
    glue: list[list[str]] = [[]]  # runs of session fields (names) between per-event values
    statements: list[str] = []
    literal: list[str] = []  # constant JSON text waiting to be emitted

    def flush_literal():
        if literal:
            pieces.append(_fstring_text("".join(literal)))
            literal.clear()

    first = True
    for f in FIELDS:
        sep = "" if first else ","
        first = False
        key = orjson.dumps(f.name).decode() + ":"
        if f.name in session_fields:
            if not glue[-1]:
                flush_literal()
                pieces.append(f"{{g{len(glue) - 1}}}")
            glue[-1].append((sep, f.name))
            continue
        if glue[-1]:
            glue.append([])
        if f.name == "schema_version":
            literal.append(sep + key + orjson.dumps(SCHEMA_VERSION).decode())
        elif f.name == "event_id":
            # `"<session id>-` per session (orjson's escaping), then the index and a quote
            flush_literal()
            literal.append(sep + key)
            flush_literal()
            pieces.append("{eid}{k}")
            literal.append('"')
        elif f.name == "page_duration_ms":
            literal.append(sep + key)
            flush_literal()
            pieces.append("{nts - timestamp}")
        elif f.name == "sent_at" or f.name in partial_fields:
            before, field = _value(f)
            statements += before
            quote = '"' if f.kind is Kind.TIMESTAMP else ""
            literal.append(sep + key + quote)
            flush_literal()
            pieces.append(field)
            literal.append(quote)
        else:
            raise RuntimeError(f"event field {f.name!r} has no source in the line encoder")
    literal.append("}")
    flush_literal()
    pieces.insert(0, "{{")
    glue = [g for g in glue if g]

    # per session: each run of session fields as orjson writes it inside the object
    session_lines = []
    for i, run in enumerate(glue):
        items = ", ".join(f"{name!r}: {name}" for _, name in run)
        lead = repr(run[0][0])
        session_lines.append(f"    g{i} = {lead} + dumps({{{items}}})[1:-1].decode()")
    src = "\n".join([
        "def session_lines(append, partial, session, rand, lat):",
        f"    ({', '.join(SESSION_FIELDS)},) = session",
        *session_lines,
        "    eid = dumps(session_id + '-')[:-1].decode()",
        "    n = len(partial)",
        f"    nts = partial[0][{PARTIAL_TS}]",
        "    for k in range(n):",
        f"        ({', '.join(PARTIAL_FIELDS)},) = partial[k]",
        "        if k + 1 < n:",
        f"            nts = partial[k + 1][{PARTIAL_TS}]",
        # the collector's time, drawn as Simulator._session draws it
        "        x = rand() * 1024.0",
        "        i = int(x)",
        "        sent_at = timestamp + int(lat[i] + (x - i) * (lat[i + 1] - lat[i]))",
        *("    " + s for s in statements),
        f"        append((sent_at, f'{''.join(pieces)}'.encode()))",
        "",
    ])
    return src


_SOURCE = _compile_session_lines()


class SessionLines:
    """Version 1 lines of whole sessions (`session`), and of single rows (`row`: what
    noise changes, and bots); both exactly `VersionedEncoder("1")`'s bytes."""

    def __init__(self):
        self.row = VersionedEncoder(str(SCHEMA_VERSION))
        namespace = {"dumps": orjson.dumps, "TEXT": _JsonText(), "MINUTES": _Minutes(),
                     "IN_MINUTE": _IN_MINUTE, "NULL": "null", "BOOL": ("false", "true")}
        exec(compile(_SOURCE, "<session_lines>", "exec"), namespace)
        self.session = namespace["session_lines"]


class RowLines:
    """The same interface for any `--schema-version` mode: the rows are built
    (`complete_session`) and encoded one by one."""

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
                append((s, event(row)))

        self.session = session


def line_encoder(mode: str):
    """The fastest line encoder for a `--schema-version` mode."""
    return SessionLines() if mode == str(SCHEMA_VERSION) else RowLines(mode)
