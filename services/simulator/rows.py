"""The simulator's tuples: their layouts, and how a session's become event rows.

The hot paths carry events as tuples, not dicts. Each layout is declared here once, by
field name, and every position is derived from the names:

- an event *row*: the fields of `shared.events` in `FIELD_NAMES` order (timestamps as
  epoch ms);
- a *partial* event (`PARTIAL_FIELDS`): what the walk decides for each event;
- a session's *constants* (`SESSION_FIELDS`): what all its events share;
- a *visitor* (`VISITOR_FIELDS`): who visits, kept across sessions.

`complete_session` makes rows from a session's partial events and constants (deriving the
schema version, event id and page duration), and `row_to_event` makes the event dict of
`shared.events` from a row. Both are generated from the declarations at import: one
generated tuple or dict literal is about twice as fast as building it field by field.
"""

from __future__ import annotations

from shared.events import FIELD_INDEX, FIELD_NAMES, SCHEMA_VERSION

# positions in an event row
TS = FIELD_INDEX["timestamp"]
SENT = FIELD_INDEX["sent_at"]
SESSION_ID = FIELD_INDEX["session_id"]

PARTIAL_FIELDS = (
    "timestamp", "page", "action", "page_url", "product_id", "category", "element_id",
    "position_x", "position_y", "scroll_depth_percent", "price_cents", "quantity", "order_id",
    "revenue_cents", "is_logged_in",
)
PARTIAL_TS = PARTIAL_FIELDS.index("timestamp")

# The event fields come first, so that a session takes them as one slice; `has_account`
# is the model's own (whether a checkout asks to log in or to sign up).
VISITOR_FIELDS = (
    "user_id", "device_type", "os", "browser", "language", "ip_address", "geo_country",
    "geo_city", "geo_region", "ab_test_variant", "has_account",
)
_VISITOR_EVENT_FIELDS = sum(1 for name in VISITOR_FIELDS if name in FIELD_INDEX)
DEVICE = VISITOR_FIELDS.index("device_type")
VARIANT = VISITOR_FIELDS.index("ab_test_variant")
HAS_ACCOUNT = VISITOR_FIELDS.index("has_account")

SESSION_FIELDS = (
    "session_id", "referrer", "utm_source", "utm_medium", "utm_campaign",
    *VISITOR_FIELDS[:_VISITOR_EVENT_FIELDS],
)


def session_constants(sid: str, visitor: tuple, referrer: str | None, utm_source: str | None,
                      utm_medium: str | None, utm_campaign: str | None) -> tuple:
    """A session's constants in `SESSION_FIELDS` order."""
    return (sid, referrer, utm_source, utm_medium, utm_campaign,
            *visitor[:_VISITOR_EVENT_FIELDS])


# Fields neither the walk nor the session decides, and the expression that derives each in
# the generated loop below (`k`: the event's index in its session; `nts`: the timestamp of
# the session's next event, its own on the last, so that the last lasts 0 ms).
_DERIVED = {
    "schema_version": "SCHEMA_VERSION",
    "event_id": 'f"{session_id}-{k}"',
    "sent_at": "sent[k]",
    "page_duration_ms": "nts - timestamp",
}


_LOOP_NAMES = {"append", "partial", "session", "sent", "n", "nts", "k", "SCHEMA_VERSION"}


def _compile_complete_session():
    sources = [set(PARTIAL_FIELDS), set(SESSION_FIELDS), set(_DERIVED)]
    clash = (sources[0] | sources[1]) & _LOOP_NAMES
    if clash:  # fields become local names of the generated loop
        raise RuntimeError(f"field name(s) {sorted(clash)} clash with the generated loop's")
    for name in FIELD_NAMES:
        if sum(name in s for s in sources) != 1:
            raise RuntimeError(f"event field {name!r} must come from exactly one of the "
                               "partial event, the session constants and the derived fields")
    row = ", ".join(_DERIVED.get(name, name) for name in FIELD_NAMES)
    src = (
        "def complete_session(append, partial, session, sent):\n"
        f"    ({', '.join(SESSION_FIELDS)},) = session\n"
        "    n = len(partial)\n"
        f"    nts = partial[0][{PARTIAL_TS}]\n"
        "    for k in range(n):\n"
        f"        ({', '.join(PARTIAL_FIELDS)},) = partial[k]\n"
        "        if k + 1 < n:\n"
        f"            nts = partial[k + 1][{PARTIAL_TS}]\n"
        f"        append(({row}))\n"
    )
    namespace: dict = {"SCHEMA_VERSION": SCHEMA_VERSION}
    exec(compile(src, "<complete_session>", "exec"), namespace)
    fn = namespace["complete_session"]
    fn.__doc__ = ("Append to `append` one event row per partial event of a session, given "
                  "its constants (SESSION_FIELDS order) and each event's collector time.")
    return fn


complete_session = _compile_complete_session()


def _compile_row_to_event():
    """tuple -> event dict, as one generated dict literal (about twice as fast as
    `dict(zip(FIELD_NAMES, row))`)."""
    names = ", ".join(f"a{i}" for i in range(len(FIELD_NAMES)))
    items = ", ".join(f"{n!r}: a{i}" for i, n in enumerate(FIELD_NAMES))
    src = f"def row_to_event(row):\n    ({names},) = row\n    return {{{items}}}\n"
    namespace: dict = {}
    exec(compile(src, "<row_to_event>", "exec"), namespace)
    fn = namespace["row_to_event"]
    fn.__doc__ = "An event tuple (FIELD_NAMES order) as the event dict of shared.events."
    return fn


row_to_event = _compile_row_to_event()
