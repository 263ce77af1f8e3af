"""Read routing (stages 3-5), pure: given what we know about the replicas, pick who answers a read.

Rules, in order: a reader who wrote within the read-your-writes window reads from the primary; a
replica that is down, unmeasured or lagging beyond the bound is skipped; among the healthy ones the
caller's rotation picks one (spreads load); no healthy replica means the primary.
"""

from dataclasses import dataclass

from chirp.topology import PRIMARY


@dataclass(frozen=True)
class ReplicaState:
    up: bool
    lag_seconds: float | None  # None: not measured yet / unknown


def healthy(state: ReplicaState, max_lag_seconds: float) -> bool:
    return state.up and state.lag_seconds is not None and state.lag_seconds <= max_lag_seconds


def wrote_recently(last_write_at: float | None, now: float, window_seconds: float) -> bool:
    return last_write_at is not None and now - last_write_at < window_seconds


def choose_read_replica(
    replicas: list[ReplicaState],
    *,
    now: float,
    last_write_at: float | None,
    read_your_writes_seconds: float,
    max_lag_seconds: float,
    rotation: int,
) -> int:
    """Index of the replica to read from, or PRIMARY."""
    if wrote_recently(last_write_at, now, read_your_writes_seconds):
        return PRIMARY
    candidates = [i for i, state in enumerate(replicas) if healthy(state, max_lag_seconds)]
    if not candidates:
        return PRIMARY
    return candidates[rotation % len(candidates)]


def statement_kind(sql: str) -> str:
    """'read' for SELECT/WITH ... SELECT statements, 'write' otherwise (for the query counters)."""
    head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return "read" if head in ("SELECT", "WITH", "VALUES", "SHOW", "TABLE") else "write"
