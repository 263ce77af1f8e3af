"""Versioned schema migrations (chirp/migrations/NNNN_name.sql), safe when many pods start at once.

A session-level advisory lock serialises concurrent runners; each migration and its bookkeeping row
commit in one transaction, so a runner that dies half-way leaves nothing half-applied.

wait_for_database() lets `chirp migrate --wait SECONDS` start before its database does (an init
container created together with the primary): connection attempts are retried with tenacity.
"""

import re
from importlib import resources

import psycopg
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
)

MIGRATION_LOCK_KEY = 0x43_68_69_72_70  # "Chirp": one advisory lock for all runners
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


CONNECT_TIMEOUT_SECONDS = 3  # one attempt; libpq's minimum is 2


class DatabaseNotAnswering(Exception):
    """The database did not accept a connection within the time allowed."""

    def __init__(self, url: str, seconds: float, attempts: int, reason: str):
        plural = "s" if attempts != 1 else ""
        super().__init__(f"{url} did not answer within {seconds:g} s ({attempts} attempt{plural}):"
                         f" {reason}")
        self.url, self.attempts, self.reason = url, attempts, reason


def _connect_once(url: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
        conn.execute("SELECT 1")


def wait_for_database(url: str, seconds: float, on_retry=None) -> int:
    """Return once `url` accepts a connection, trying for up to `seconds` (0: a single attempt);
    the number of attempts it took. on_retry(attempt, error, sleep_seconds) is called before each
    pause. Raises DatabaseNotAnswering with the last error when time is up."""
    retrying = Retrying(
        stop=stop_before_delay(seconds),
        wait=wait_exponential(multiplier=0.25, min=0.25, max=2),
        retry=retry_if_exception_type(psycopg.OperationalError),
        reraise=True,
    )
    if on_retry is not None:
        def before_sleep(state: RetryCallState) -> None:
            on_retry(state.attempt_number, state.outcome.exception(), state.upcoming_sleep)

        retrying.before_sleep = before_sleep
    try:
        retrying(_connect_once, url)
    except psycopg.OperationalError as error:
        attempts = retrying.statistics.get("attempt_number", 1)
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DatabaseNotAnswering(url, seconds, attempts, reason) from error
    return retrying.statistics.get("attempt_number", 1)


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
        # A read-only database (by default_transaction_read_only) still takes migrations.
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
