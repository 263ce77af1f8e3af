"""Versioned schema migrations (chirp/migrations/NNNN_name.sql), safe when many pods start at once.

A session-level advisory lock serialises concurrent runners; each migration and its bookkeeping row
commit in one transaction, so a runner that dies half-way leaves nothing half-applied.
"""

import re
from importlib import resources

import psycopg

MIGRATION_LOCK_KEY = 0x43_68_69_72_70  # "Chirp": one advisory lock for all runners
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql), sorted by version."""
    found = []
    for entry in resources.files("chirp.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migrations share a version number")
    return found


def migrate(url: str) -> list[int]:
    """Apply the missing migrations to one database; returns the versions this call applied."""
    applied_now = []
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        # A fenced (read-only) database still takes migrations from the migrating command.
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in available_migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name),
                    )
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now
