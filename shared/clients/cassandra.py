"""One way to open a Cassandra session from settings (contact points, port, credentials)."""

from __future__ import annotations

import logging

from shared.settings import Settings


def connect(settings: Settings, keyspace: str | None = None, timeout: float = 10.0):
    """(cluster, session); the caller shuts the cluster down."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    # The driver logs a warning per failed connection attempt; readiness polls expect those.
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    auth = None
    if settings.cassandra_username and settings.cassandra_password:
        auth = PlainTextAuthProvider(settings.cassandra_username,
                                     settings.cassandra_password.get_secret_value())
    cluster = Cluster(
        contact_points=settings.cassandra_contact_points,
        port=settings.cassandra_port,
        auth_provider=auth,
        connect_timeout=timeout,
        control_connection_timeout=timeout,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            request_timeout=max(timeout, 10.0),
        )},
        protocol_version=5,
    )
    try:
        session = cluster.connect(keyspace)
    except Exception:
        cluster.shutdown()
        raise
    return cluster, session
