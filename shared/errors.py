"""Typed errors the CLI turns into one-line messages (what, where, how to fix)."""


class ClickstreamError(Exception):
    """An expected failure with a message fit for the user; the CLI prints it and exits 1."""
