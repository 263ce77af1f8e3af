"""Connection pools per database and the routing of reads and writes (stages 1-5).

Writes always go to the owning shard's primary. Reads go to the primary while the architecture
document's stage reads from no replicas (1-2: a stage-2 pod knows the replicas' URL already),
otherwise through routing.choose_read_replica(); a replica that fails mid-read is marked down and
the read is retried on the primary, so a dying replica costs latency, never an error.

Both follow data moves (docs/moves.md) through the one ShardMap: a write learns a move from the
refusal of the database it wrote to (write_owned); a read, which a retired database still answers,
from the routing record that layout() re-reads when it was last read before what the read must
see.
"""

import itertools
import threading
import time
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from chirp.config import Config, LiveArchitecture
from chirp.metrics import DB_QUERIES, WRITES_REFUSED
from chirp.move import handoff
from chirp.routing import (
    ReplicaState,
    choose_read_replica,
    layout_known_current,
    needed_since,
    statement_kind,
)
from chirp.shards import PRIMARY, Layout, Shard, ShardMap, route_label
from chirp.trace import current_trace


class DatabaseUnavailable(Exception):
    """No database could answer (HTTP 503)."""


class WritesFenced(Exception):
    """The database is read-only, or a data move's cutover held the write longer than
    handoff.HOLD_SECONDS (HTTP 503 + Retry-After)."""


MAX_ROUTING_HOPS = 5  # moves followed in one layout() call (one per cutover since the last check)
ROUTING_CHECK_TIMEOUT = 1.0  # seconds to wait for a connection to ask a primary its routing

# Errors after which a read is worth retrying elsewhere (connection lost, recovery conflict...).
_RETRYABLE_READ_ERRORS = (psycopg.OperationalError, psycopg.errors.SerializationFailure)

# On the replica, given the primary's WAL position taken just before: is it complete up to there,
# and if not, how far behind (time since its last replayed commit: conservative after idle spells).
REPLICA_STATE_SQL = """
SELECT caught_up,
       CASE WHEN caught_up THEN 0
            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 1e9)
       END::float8 AS lag
FROM (SELECT coalesce(NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= %s::pg_lsn, false)
             AS caught_up) AS s
"""
# Primary unreachable: best effort from the replica alone (reads must go on without a primary).
REPLICA_ALONE_SQL = """
SELECT false AS caught_up,
       CASE WHEN NOT pg_is_in_recovery() THEN 0
            WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 1e9)
       END::float8 AS lag
"""


class Executor:
    """A connection bound to its route label: every statement is counted and traced."""

    def __init__(self, conn: psycopg.Connection, label: str):
        self.conn = conn
        self.label = label

    def _execute(self, sql: str, params):
        DB_QUERIES.labels(route=self.label, kind=statement_kind(sql)).inc()
        current_trace().used_db(self.label)
        return self.conn.execute(sql, params)

    def all(self, sql: str, params=()) -> list[dict]:
        return self._execute(sql, params).fetchall()

    def one(self, sql: str, params=()) -> dict | None:
        return self._execute(sql, params).fetchone()

    def run(self, sql: str, params=()) -> int:
        return self._execute(sql, params).rowcount


class ReplicaHealth:
    """A replica's last measured state, re-measured at most every `interval` seconds.

    Health checks use raw connections: they are not counted as the app's queries."""

    def __init__(self, get_pool, get_primary_pool, interval: float):
        self._get_pool = get_pool
        self._get_primary_pool = get_primary_pool
        self._interval = interval
        self._lock = threading.Lock()
        self.state = ReplicaState(up=False, lag_seconds=None)
        self.checked_at = float("-inf")

    def current(self, now: float) -> ReplicaState:
        if now - self.checked_at >= self._interval and self._lock.acquire(blocking=False):
            try:
                self.state = self._measure()
                self.checked_at = time.monotonic()
            finally:
                self._lock.release()
        return self.state

    def _measure(self) -> ReplicaState:
        started = time.time()
        try:
            with self._get_primary_pool().connection(timeout=1.0) as conn:
                row = conn.execute("SELECT pg_current_wal_lsn()::text AS lsn").fetchone()
                primary_lsn = row["lsn"]
        except psycopg.Error:
            primary_lsn = None
        try:
            with self._get_pool().connection(timeout=1.0) as conn:
                if primary_lsn is None:
                    row = conn.execute(REPLICA_ALONE_SQL).fetchone()
                else:
                    row = conn.execute(REPLICA_STATE_SQL, (primary_lsn,)).fetchone()
        except psycopg.Error:
            return ReplicaState(up=False, lag_seconds=None)
        lag = float(row["lag"])
        # Complete up to `started` if it reached the primary's position; otherwise up to its last
        # replayed commit, less one check interval for safety.
        caught_up_until = started if row["caught_up"] else started - lag - self._interval
        return ReplicaState(up=True, lag_seconds=lag, caught_up_until=caught_up_until)

    def mark_down(self) -> None:
        self.state = ReplicaState(up=False, lag_seconds=None)
        self.checked_at = time.monotonic()


class Databases:
    def __init__(self, config: Config, shard_map: ShardMap, architecture: LiveArchitecture):
        self.config = config
        self.shard_map = shard_map
        self.architecture = architecture
        self._pools: dict[str, ConnectionPool] = {}
        self._pools_lock = threading.Lock()
        self._rotation = itertools.count()
        self._routing_from = 0  # the shard whose primary answered the last routing check
        self._no_routing_until = float("-inf")  # monotonic: no primary answered a moment ago
        self._health = {
            url: ReplicaHealth(lambda url=url: self._pool(url, replica=True),
                               lambda shard=shard: self._pool(shard.primary_url),
                               config.replica_check_seconds)
            for shard in shard_map.configured
            for url in shard.replica_urls
        }

    def _pool(self, url: str, *, replica: bool = False) -> ConnectionPool:
        with self._pools_lock:
            pool = self._pools.get(url)
            if pool is None:
                pool = ConnectionPool(
                    url,
                    min_size=0 if replica else 1,
                    max_size=self.config.db_pool_max,
                    timeout=2.0 if replica else 5.0,
                    kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 2},
                    check=ConnectionPool.check_connection,
                    reconnect_timeout=0,  # keep retrying connects quietly; the health check decides
                    name=url,
                    open=True,
                )
                self._pools[url] = pool
        return pool

    def close(self) -> None:
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close(timeout=2)

    # --- writes -------------------------------------------------------------------------------
    @contextmanager
    def write(self, shard: Shard):
        """A transaction on the shard's primary."""
        label = route_label(self.shard_map.sharded, shard.index, PRIMARY)
        try:
            with self._pool(shard.primary_url).connection() as conn:
                with conn.transaction():
                    yield Executor(conn, label)
        except psycopg.errors.ReadOnlySqlTransaction:
            WRITES_REFUSED.inc()
            raise WritesFenced("writes are paused while data moves; retry shortly") from None
        except psycopg.OperationalError as error:
            raise DatabaseUnavailable(f"database {label} is unavailable") from error

    def write_owned(self, bucket: int, work):
        """work(executor) in a transaction on the primary that owns `bucket`. A database a data
        move retired or has not made live yet refuses the write (CH001): follow its routing
        record and retry, holding the write up to handoff.HOLD_SECONDS; never lose it."""
        started = time.monotonic()
        while True:
            layout = self.shard_map.current()
            shard = layout.shard_for_bucket(bucket)
            try:
                with self.write(shard) as db:
                    return work(db)
            except psycopg.Error as error:
                if not handoff.is_moved_error(error):
                    raise
                routing = self._routing(shard.primary_url)
            step = handoff.after_refusal(routing, layout.epoch, time.monotonic() - started)
            if step.action == "reroute":
                self.shard_map.follow_move(step.shard_urls, step.epoch)
            elif step.action == "wait":
                time.sleep(handoff.RETRY_PAUSE_SECONDS)
            else:
                WRITES_REFUSED.inc()
                raise WritesFenced("writes are paused while data moves; retry shortly")

    def _routing(self, primary_url: str, timeout: float | None = None) -> handoff.Routing:
        """The database's routing record (raw: not counted as the app's queries)."""
        with self._pool(primary_url).connection(timeout=timeout) as conn:
            row = conn.execute(handoff.ROUTING_SQL).fetchone()
        return handoff.Routing(row["state"], row["epoch"], tuple(row["shard_urls"]))

    # --- reads --------------------------------------------------------------------------------
    def layout(self, last_write_at: float | None = None) -> Layout:
        """The layout a read must use: one known to hold every write acknowledged before what the
        read must see (routing.needed_since). Reads never learn a move from an error: a retired
        database answers them, only staler and staler. So when the last check is older than that,
        ask a primary of the layout for its routing record and follow it.

        One primary answering is enough: a move replaces the whole layout and its targets take
        no write before every source is retired, so while any primary of a layout is not retired,
        all of them hold every acknowledged write of their buckets."""
        needed = needed_since(last_write_at, time.time(), self.config.routing_check_seconds)
        for _ in range(MAX_ROUTING_HOPS):
            layout, verified_at = self.shard_map.current_verified()
            if layout_known_current(verified_at, needed):
                return layout
            if time.monotonic() < self._no_routing_until:  # primaries down: do not wait on them
                return layout  # at every read (replicas may serve it)
            checked_at = time.time()
            found = self._any_routing(layout)
            if found is None:  # the read fails on a primary or succeeds on a replica on its own
                self._no_routing_until = time.monotonic() + self.config.routing_check_seconds
                return layout
            step = handoff.after_check(found, layout.epoch)
            if step.action == "reroute":
                self.shard_map.follow_move(step.shard_urls, step.epoch)
                continue
            if step.action == "current":
                self.shard_map.verified(layout, checked_at)
            return layout
        return self.shard_map.current()

    def _any_routing(self, layout: Layout) -> handoff.Routing | None:
        """The routing record of the first primary of `layout` that answers, starting with the
        one that answered last (a shard that is down costs the wait once, not at every check)."""
        count = len(layout.shards)
        for k in range(self._routing_from, self._routing_from + count):
            try:
                found = self._routing(layout.shards[k % count].primary_url, ROUTING_CHECK_TIMEOUT)
            except psycopg.Error:  # PoolTimeout included
                continue
            self._routing_from = k % count
            return found
        return None

    def replica_states(self, shard: Shard) -> list[ReplicaState]:
        now = time.monotonic()
        return [self._health[url].current(now) for url in shard.replica_urls]

    def choose_read(self, shard: Shard, last_write_at: float | None) -> int:
        if not shard.replica_urls or not self.architecture.current().reads_from_replicas:
            return PRIMARY
        return choose_read_replica(
            self.replica_states(shard),
            last_write_at=last_write_at,
            max_lag_seconds=self.config.max_replica_lag_seconds,
            rotation=next(self._rotation),
        )

    def read(self, shard: Shard, work, *, last_write_at: float | None = None):
        """Run work(executor) on the chosen replica, or on the primary; `shard` comes from
        layout(last_write_at)."""
        replica = self.choose_read(shard, last_write_at)
        if replica != PRIMARY:
            url = shard.replica_urls[replica]
            label = route_label(self.shard_map.sharded, shard.index, replica)
            try:
                with self._pool(url, replica=True).connection() as conn:
                    return work(Executor(conn, label))
            except _RETRYABLE_READ_ERRORS:
                self._health[url].mark_down()  # fall through to the primary
        label = route_label(self.shard_map.sharded, shard.index, PRIMARY)
        for attempt in (1, 2):  # a connection killed under us (restart, failover) is retried once
            try:
                with self._pool(shard.primary_url).connection() as conn:
                    return work(Executor(conn, label))
            except _RETRYABLE_READ_ERRORS as error:
                if attempt == 2:
                    raise DatabaseUnavailable(f"database {label} is unavailable") from error

    def read_all_shards(self, work, *, last_write_at=None) -> dict[int, object]:
        """Scatter: run work on each shard; results by shard index."""
        return {shard.index: self.read(shard, work, last_write_at=last_write_at)
                for shard in self.layout(last_write_at).shards}

    def ping(self) -> tuple[bool, dict[str, bool]]:
        """Readiness: can this pod serve every shard's reads right now, and what answered? A
        shard's primary answers, or, at a stage that reads from replicas, one of its replicas does:
        a lost primary then costs its own writes only. (A pod that went unready with it would
        take down the reads its replicas serve, and at stage 5 every other shard's requests.)"""
        result: dict[str, bool] = {}
        ready = True
        replicas_serve = self.architecture.current().reads_from_replicas
        for shard in self.shard_map.shards:
            label = route_label(self.shard_map.sharded, shard.index, PRIMARY)
            result[label] = self._answers(shard.primary_url)
            served = result[label]
            for replica, url in enumerate(shard.replica_urls if replicas_serve else ()):
                if served:
                    break
                label = route_label(self.shard_map.sharded, shard.index, replica)
                result[label] = served = self._answers(url, replica=True)
            ready = ready and served
        return ready, result

    def _answers(self, url: str, *, replica: bool = False) -> bool:
        try:
            with self._pool(url, replica=replica).connection(timeout=2.0) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False
