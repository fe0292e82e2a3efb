"""The shared package: settings, the event schema and the table specs.

Every service imports its facts from here; nothing else declares a field, a table,
a host or a port.
"""
