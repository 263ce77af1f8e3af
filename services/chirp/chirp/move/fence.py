"""Fencing: make a database refuse writes (read-only by default) and end the sessions that could
still write. Reads keep working; the app answers writes with 503 + Retry-After."""

import time

import psycopg
from psycopg import sql


def _database(conn) -> sql.Identifier:
    return sql.Identifier(conn.execute("SELECT current_database()").fetchone()[0])


def fence(conn: psycopg.Connection, timeout: float = 30.0) -> int:
    """Returns how many sessions were ended. `conn` must be autocommit."""
    conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on")
                 .format(_database(conn)))
    # pg_terminate_backend in the select list, not the WHERE: AND does not fix evaluation order.
    ended = conn.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
    ).fetchall()
    pids = [row[0] for row in ended]
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:  # their commits, if any, are now durable
        left = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                            (pids,)).fetchone()[0]
        if left == 0:
            break
        time.sleep(0.05)
    return len(pids)


def unfence(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only")
                 .format(_database(conn)))


def is_fenced(conn: psycopg.Connection) -> bool:
    """Read-only by database default (what new sessions get)."""
    row = conn.execute(
        "SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
        " WHERE d.datname = current_database() AND s.setrole = 0"
        " AND 'default_transaction_read_only=on' = ANY(s.setconfig)"
    ).fetchone()
    return row is not None
