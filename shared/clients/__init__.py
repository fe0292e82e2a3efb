"""Clients of the servers every service talks to: one way to open each."""
