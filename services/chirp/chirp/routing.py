"""Read routing (stages 3-5), pure: given what we know about the replicas, pick who answers a read.

Rules: a replica that is down, unmeasured or lagging beyond the bound is skipped. A reader who
wrote recently (read-your-writes) may only use a replica known to hold everything committed up to
that write: `caught_up_until` is the instant up to which a health check proved the replica complete
(its replay position reached the primary's WAL position taken at that instant). So the primary
answers a writer only until the next check shows the replicas caught up: usually well under a
second, and never shorter than the real replication delay. Among the eligible replicas the
caller's rotation picks one; none eligible means the primary.
"""

from dataclasses import dataclass

from chirp.shards import PRIMARY

CLOCK_MARGIN_SECONDS = 0.1  # pods' clocks differ a little; be conservative by this much


@dataclass(frozen=True)
class ReplicaState:
    up: bool
    lag_seconds: float | None  # None: not measured yet / unknown
    caught_up_until: float = float("-inf")  # wall-clock time the replica is known complete up to


def healthy(state: ReplicaState, max_lag_seconds: float) -> bool:
    return state.up and state.lag_seconds is not None and state.lag_seconds <= max_lag_seconds


def has_writes_until(state: ReplicaState, last_write_at: float | None) -> bool:
    """Does this replica certainly hold a write acknowledged at last_write_at?"""
    return last_write_at is None or last_write_at + CLOCK_MARGIN_SECONDS < state.caught_up_until


def choose_read_replica(
    replicas: list[ReplicaState],
    *,
    last_write_at: float | None,
    max_lag_seconds: float,
    rotation: int,
) -> int:
    """Index of the replica to read from, or PRIMARY."""
    candidates = [i for i, state in enumerate(replicas)
                  if healthy(state, max_lag_seconds) and has_writes_until(state, last_write_at)]
    if not candidates:
        return PRIMARY
    return candidates[rotation % len(candidates)]


def needed_since(last_write_at: float | None, now: float, staleness_seconds: float) -> float:
    """The instant up to which a read must see every acknowledged write: the reader's (or a task's
    trigger's) last write; now for a read that must be fresh now (last_write_at = inf); a read that
    accepts staleness, `staleness_seconds` ago."""
    if last_write_at is None:
        return now - staleness_seconds
    return min(last_write_at, now)


def layout_known_current(verified_at: float, needed: float) -> bool:
    """Does a routing check made at `verified_at` vouch for every write acknowledged before
    `needed`? Clocks of the pod that wrote and the one that reads differ a little."""
    return needed + CLOCK_MARGIN_SECONDS < verified_at


def statement_kind(sql: str) -> str:
    """'read' for SELECT/WITH ... SELECT statements, 'write' otherwise (for the query counters)."""
    head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return "read" if head in ("SELECT", "WITH", "VALUES", "SHOW", "TABLE") else "write"
