"""Online moves: logical replication copies while the sources keep taking writes; the cutover
holds writes (table locks, not errors) for a bounded moment. See docs/moves.md for the protocol.

Every step reads where the move stands from the coordinator (the first target's chirp_moves row)
and from the databases themselves (publications, slots, subscriptions, chirp_routing), and only
does what is missing: killed anywhere, the same command run again finishes the step.
"""

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from chirp.db.migrate import migrate
from chirp.move import layout, steps, verify
from chirp.move.layout import redact

# Reads go on, writes wait. Children first: a post's insert holds posts and then share-locks its
# author in users (the foreign key), so taking users first could deadlock with it.
LOCK_TABLES = "LOCK TABLE posts, follows, users IN EXCLUSIVE MODE"
# How long a step waits, when it starts, for every database to answer: a Job's new pod may be
# refused for a moment (a NetworkPolicy enforcer adds a new pod's address to its rules after the
# pod starts; a Service routes to a new database pod a moment after that pod turns ready).
OPEN_PATIENCE_SECONDS = 30.0
OPEN_RETRY_SECONDS = 1.0


class MoveRefused(Exception):
    """The request is unsafe or does not fit the move's phase; nothing was changed."""


class DatabaseUnreachable(MoveRefused):
    """A database did not answer (for OPEN_PATIENCE_SECONDS when a step starts). `start` alone
    refuses (exit 2); the steps the operator's Jobs run fail with exit 1, so a new pod tries
    again (the Job's backoff bounds it)."""


class CutoverAborted(Exception):
    """The cutover could not finish within its bound; the sources stayed live, nothing changed."""


# A failpoint: the command SIGKILLs itself right after the first progress line containing this
# text. Tests crash a step at an exact point with it (a reader of stderr that kills on the line
# races the command, which may finish first). Unset outside tests.
CRASH_AFTER_ENV = "CHIRP_MOVE_CRASH_AFTER"
# Another failpoint: after the first progress line containing PAUSE_AFTER's text the command waits
# (at most a minute) until the file named by RESUME_FILE exists, so a test can act at that point
# (e.g. change a row between the checksums before the lock and the lock). Unset outside tests.
PAUSE_AFTER_ENV, RESUME_FILE_ENV = "CHIRP_MOVE_PAUSE_AFTER", "CHIRP_MOVE_RESUME_FILE"


def _progress(message: str) -> None:
    print(f"chirp move: {message}", file=sys.stderr, flush=True)
    crash_after = os.environ.get(CRASH_AFTER_ENV)
    if crash_after and crash_after in message:
        os.kill(os.getpid(), signal.SIGKILL)
    pause_after, resume_file = os.environ.get(PAUSE_AFTER_ENV), os.environ.get(RESUME_FILE_ENV)
    if pause_after and resume_file and pause_after in message:
        give_up = time.monotonic() + 60
        while not os.path.exists(resume_file) and time.monotonic() < give_up:
            time.sleep(0.01)


def _connect(url: str, replication: bool = False) -> psycopg.Connection:
    """replication=True: a logical replication session (it can create and drain a slot and run
    SQL, with the simple query protocol only)."""
    extra = {"replication": "database"} if replication else {}
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10,
                               options="-c TimeZone=UTC", application_name="chirp-move", **extra)
    except psycopg.OperationalError as error:
        raise DatabaseUnreachable(f"cannot reach {redact(url)}: {str(error).strip()}") from None
    conn.execute("SET default_transaction_read_only = off")
    return conn


def _subscription_conninfo(url: str) -> str:
    """The publisher as the subscriber's server will dial it (URLs carry no password)."""
    password = os.environ.get("PGPASSWORD")
    return make_conninfo(url, password=password) if password else make_conninfo(url)


@dataclass
class Move:
    """A move between concrete databases, with one open connection per database."""

    source_urls: list[str]
    target_urls: list[str]
    sources: list[psycopg.Connection] = field(default_factory=list)
    targets: list[psycopg.Connection] = field(default_factory=list)

    @property
    def id(self) -> str:
        return layout.move_id(self.source_urls, self.target_urls)

    @property
    def coordinator(self) -> psycopg.Connection:
        return self.targets[0]

    def forward(self) -> list[layout.Stream]:
        return layout.streams(self.id, len(self.sources), len(self.targets), "forward")

    def back(self) -> list[layout.Stream]:
        return layout.streams(self.id, len(self.sources), len(self.targets), "back")

    # A stream's ends: forward streams publish on a source, back streams on a target.
    def publisher(self, stream: layout.Stream) -> psycopg.Connection:
        return self.sources[stream.source] if stream.direction == "forward" \
            else self.targets[stream.target]

    def subscriber(self, stream: layout.Stream) -> psycopg.Connection:
        return self.targets[stream.target] if stream.direction == "forward" \
            else self.sources[stream.source]

    def publisher_url(self, stream: layout.Stream) -> str:
        return self.source_urls[stream.source] if stream.direction == "forward" \
            else self.target_urls[stream.target]

    def close(self) -> None:
        for conn in self.sources + self.targets:
            conn.close()


def _connect_patiently(url: str, deadline: float) -> psycopg.Connection:
    """_connect, tried again every OPEN_RETRY_SECONDS until `deadline` (time.monotonic())."""
    while True:
        try:
            return _connect(url)
        except DatabaseUnreachable:
            if time.monotonic() + OPEN_RETRY_SECONDS > deadline:
                raise
            time.sleep(OPEN_RETRY_SECONDS)


def open_move(source_urls: list[str], target_urls: list[str],
              patience: float = OPEN_PATIENCE_SECONDS) -> Move:
    """Checks the request's shape, reaches every database (trying again until `patience` seconds
    have passed) and brings its schema up to date."""
    if not source_urls or not target_urls:
        raise MoveRefused("need at least one source (--from) and one target (--to)")
    names = [redact(url) for url in source_urls + target_urls]
    if len(set(names)) != len(names):
        raise MoveRefused("a database appears twice (sources and targets must all differ)")
    move = Move(list(source_urls), list(target_urls))
    deadline = time.monotonic() + patience
    try:
        for url in source_urls:
            move.sources.append(_connect_patiently(url, deadline))
        for url in target_urls:
            move.targets.append(_connect_patiently(url, deadline))
        for url in source_urls + target_urls:
            migrate(url)
    except BaseException:
        move.close()
        raise
    return move


# --- records ----------------------------------------------------------------------------------
def _record(move: Move) -> dict | None:
    row = move.coordinator.execute(
        "SELECT phase, epoch, report FROM chirp_moves WHERE move_id = %s", (move.id,)).fetchone()
    return None if row is None else {"phase": row[0], "epoch": row[1], "report": row[2]}


def _set_phase(move: Move, phase: str, epoch: int | None = None, **report) -> None:
    move.coordinator.execute(
        "UPDATE chirp_moves SET phase = %s, epoch = coalesce(%s, epoch), changed_at = now(),"
        " report = report || %s WHERE move_id = %s", (phase, epoch, Jsonb(report), move.id))


def _routing(conn) -> tuple[str, int, str | None]:
    return conn.execute("SELECT state, epoch, move_id FROM chirp_routing").fetchone()


def _set_routing(conn, state: str, epoch: int, urls: list[str], move_id: str) -> None:
    conn.execute("UPDATE chirp_routing SET state = %s, epoch = %s, shard_urls = %s,"
                 " move_id = %s, changed_at = now()",
                 (state, epoch, [redact(u) for u in urls], move_id))


def _holds_rows(conn) -> bool:
    return any(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t.name})").fetchone()[0]
               for t in layout.TABLES)


def _check_new_move(move: Move) -> None:
    """Refusals for a fresh start: raised before anything is written."""
    for url, conn in zip(move.source_urls, move.sources, strict=True):
        state, epoch, _ = _routing(conn)
        if state != "live":
            raise MoveRefused(f"source {redact(url)} is not the live database (it is {state}, "
                              f"routing epoch {epoch})")
        busy = conn.execute("SELECT pubname FROM pg_publication WHERE pubname LIKE %s"
                            " AND pubname NOT LIKE %s LIMIT 1",
                            ("chirp\\_%", f"chirp\\_{move.id}\\_%")).fetchone()
        if busy:
            raise MoveRefused(f"source {redact(url)} is part of another move ({busy[0]}); "
                              "complete or abort that one first")
    for url, conn in zip(move.target_urls, move.targets, strict=True):
        other = conn.execute("SELECT move_id, phase FROM chirp_moves WHERE move_id <> %s"
                             " AND phase NOT IN ('completed', 'reversed') LIMIT 1",
                             (move.id,)).fetchone()
        if other:
            raise MoveRefused(f"target {redact(url)} coordinates another move ({other[0]}, "
                              f"{other[1]}); complete or abort that one first")
        state, epoch, owner = _routing(conn)
        if state == "standby" and owner not in (None, move.id):
            raise MoveRefused(f"target {redact(url)} is a target of another move ({owner}); "
                              "complete or abort that one first")
        if _holds_rows(conn):
            raise MoveRefused(f"target {redact(url)} already holds data ({state}, routing epoch "
                              f"{epoch}); a move only fills empty databases")
        if state == "retired":
            raise MoveRefused(f"target {redact(url)} is retired by an earlier move")


# --- replication objects (each ensure/drop is idempotent) -------------------------------------
def _exists(conn, query: str, name: str) -> bool:
    return conn.execute(query, (name,)).fetchone() is not None


def _ensure_publication(conn, stream: layout.Stream) -> None:
    if not _exists(conn, "SELECT 1 FROM pg_publication WHERE pubname = %s", stream.publication):
        conn.execute(layout.publication_sql(stream.publication, stream.buckets, stream.move_id))


def _ensure_slot(conn, name: str) -> None:
    if not _exists(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", name):
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))


def _ensure_subscription(move: Move, stream: layout.Stream, *, copy_data: bool) -> None:
    """Created disabled: see _enable()."""
    conn = move.subscriber(stream)
    if _exists(conn, "SELECT 1 FROM pg_subscription WHERE subname = %s", stream.name):
        return
    conn.execute(sql.SQL(
        "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false,"
        " slot_name = {}, copy_data = {}, enabled = false, synchronous_commit = on)").format(
        sql.Identifier(stream.name),
        sql.Literal(_subscription_conninfo(move.publisher_url(stream))),
        sql.Identifier(stream.publication), sql.Literal(stream.name),
        sql.Literal(copy_data)))


def _ensure_stream(move: Move, stream: layout.Stream, *, copy_data: bool) -> None:
    """Publication before slot: a slot decodes with the catalog as of its position."""
    _ensure_publication(move.publisher(stream), stream)
    _ensure_slot(move.publisher(stream), stream.name)
    _ensure_subscription(move, stream, copy_data=copy_data)


def _drop_slot(conn, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                           (name,)).fetchone()
        if row is None:
            return
        if row[0] is None:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                return
            except psycopg.errors.ObjectInUse:
                pass  # its walsender came back between our look and the drop
        elif time.monotonic() > deadline:  # our own stream's walsender, its subscriber gone
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        time.sleep(0.05)


def _drop_stream(move: Move, stream: layout.Stream) -> None:
    """Subscription (detached from its slot, so no remote call can fail), then the slots it used
    on the publisher: its own and any table-sync slots of an unfinished initial copy."""
    conn, publisher = move.subscriber(stream), move.publisher(stream)
    row = conn.execute("SELECT oid FROM pg_subscription WHERE subname = %s",
                       (stream.name,)).fetchone()
    if row is not None:
        name = sql.Identifier(stream.name)
        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(name))
        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(name))
        conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(name))
        for (sync_slot,) in publisher.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s",
                (f"pg\\_{row[0]}\\_sync\\_%",)).fetchall():
            _drop_slot(publisher, sync_slot)
    _drop_slot(publisher, stream.name)
    publisher.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
        sql.Identifier(stream.publication)))


def _drop_streams(move: Move, streams: list[layout.Stream]) -> None:
    for stream in streams:
        _drop_stream(move, stream)


def _enable(move: Move, streams: list[layout.Stream]) -> None:
    """All of a server's subscriptions in one transaction: the launcher starts the workers of
    everything enabled at one wake-up, then waits wal_retrieve_retry_interval before the next."""
    for conn in {id(move.subscriber(s)): move.subscriber(s) for s in streams}.values():
        with conn.transaction():
            for stream in streams:
                if move.subscriber(stream) is conn:
                    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(
                        sql.Identifier(stream.name)))


# --- start / status ---------------------------------------------------------------------------
def start(move: Move) -> dict:
    phase, work = _work_for(move, "start")
    if not work:
        return status(move)
    if phase is None:
        _check_new_move(move)
        epoch = max(_routing(conn)[1] for conn in move.sources) + 1
        move.coordinator.execute(
            "INSERT INTO chirp_moves (move_id, sources, targets, phase, epoch)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (move.id, [redact(u) for u in move.source_urls],
             [redact(u) for u in move.target_urls], steps.COPYING, epoch))
        _progress(f"move {move.id}: recorded on {redact(move.target_urls[0])}")
    for conn in move.targets:  # only replication writes here until the cutover
        if _routing(conn)[0] == "live":
            conn.execute("UPDATE chirp_routing SET state = 'standby', move_id = %s,"
                         " changed_at = now()", (move.id,))
    _progress("targets on standby")
    for stream in move.forward():
        _ensure_stream(move, stream, copy_data=True)
    _enable(move, move.forward())
    for stream in move.forward():
        _progress(f"stream {stream.name}: buckets {stream.buckets.start}.."
                  f"{stream.buckets.stop - 1} replicating")
    return status(move)


def _lsn_lag(conn, slot: str) -> int | None:
    row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint"
                       " FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    return None if row is None or row[0] is None else max(0, int(row[0]))


def _stream_status(move: Move, stream: layout.Stream) -> dict:
    publisher, subscriber = move.publisher(stream), move.subscriber(stream)
    total = sum(publisher.execute(layout.count_sql(t, stream.buckets)).fetchone()[0]
                for t in layout.TABLES)
    copied = sum(subscriber.execute(layout.count_sql(t, stream.buckets)).fetchone()[0]
                 for t in layout.TABLES)
    ready, tables = subscriber.execute(
        "SELECT count(*) FILTER (WHERE r.srsubstate = 'r'), count(r.srrelid)"
        " FROM pg_subscription s LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid"
        " WHERE s.subname = %s", (stream.name,)).fetchone()
    lag_bytes = _lsn_lag(publisher, stream.name)
    row = subscriber.execute(
        "SELECT extract(epoch FROM now() - latest_end_time)::float8 FROM pg_stat_subscription"
        " WHERE subname = %s AND relid IS NULL", (stream.name,)).fetchone()
    lag_seconds = 0.0 if lag_bytes == 0 else (round(row[0], 3) if row and row[0] else None)
    return steps.stream_progress(copied, total, ready, tables or layout.PUBLISHED_TABLES,
                                 lag_bytes, lag_seconds)


def status(move: Move) -> dict:
    record = _record(move)
    phase = record and record["phase"]
    live = {steps.COPYING: move.forward(), steps.CUTOVER_COMMITTED: move.forward(),
            steps.CUT_OVER: move.back(), steps.REVERSE_COMMITTED: move.back()}.get(phase, [])
    streams = {s.name: _stream_status(move, s) for s in live}
    report = steps.move_progress(move.id, phase, streams)
    report.update(sources=[redact(u) for u in move.source_urls],
                  targets=[redact(u) for u in move.target_urls],
                  epoch=record and record["epoch"], last_step=record and record["report"])
    return report


# --- cutover and reverse: one switch-over, run in either direction -----------------------------
@dataclass
class Switch:
    """Hand the live role from `old` databases to `new` ones; `feeds` replicate old -> new,
    `undo` (created disabled, enabled once feeds are gone) will replicate new -> old."""

    old_urls: list[str]
    old: list[psycopg.Connection]
    new_urls: list[str]
    new: list[psycopg.Connection]
    feeds: list[layout.Stream]
    undo: list[layout.Stream]
    committed: str  # phase recorded at the commit point
    done: str  # phase when finished
    epoch: int


def _old_index(switch: Switch, stream: layout.Stream) -> int:
    return stream.source if stream.direction == "forward" else stream.target


def _wait(condition, deadline: float, what: str) -> None:
    while not condition():
        if time.monotonic() > deadline:
            raise CutoverAborted(f"{what} did not happen within the cutover bound")
        time.sleep(0.01)


def _caught_up(move: Move, switch: Switch, locked: list[int], deadline: float) -> None:
    """Each feed of a locked database carries a new mark; seeing it on the new side proves the
    stream applied every write committed before the lock (a stream applies in commit order)."""
    marks = {}
    for stream in switch.feeds:
        if _old_index(switch, stream) in locked:
            marks[stream] = time.time_ns()
            move.publisher(stream).execute(
                "INSERT INTO chirp_move_marks (move_id, stream, mark) VALUES (%s, %s, %s)",
                (move.id, stream.name, marks[stream]))
    for stream, mark in marks.items():
        _wait(lambda s=stream, m=mark: move.subscriber(s).execute(
            "SELECT EXISTS (SELECT 1 FROM chirp_move_marks WHERE move_id = %s AND stream = %s"
            " AND mark = %s)", (move.id, s.name, m)).fetchone()[0],
            deadline, f"stream {stream.name} delivering its cutover mark")


def _checksums(conn) -> dict[str, list[tuple]]:
    return {t.name: conn.execute(layout.checksum_sql(t)).fetchall() for t in layout.TABLES}


def _verification(old_sums: list[dict], new_sums: list[dict]) -> dict:
    return {t.name: layout.verification([s[t.name] for s in old_sums],
                                        [s[t.name] for s in new_sums]) for t in layout.TABLES}


def _in_parallel(work, items: list) -> list:
    """work(item) for each item in its own thread (every database is its own server); raises the
    first failure once all are done."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
    results, errors = [], []
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as error:
            errors.append(error)
            results.append(None)
    if errors:
        raise errors[0]
    return results


_KEY_COLUMNS = {t.name: t.key_columns for t in layout.TABLES}


@dataclass
class _Check:
    """One database's side of the two-pass verification (chirp.move.verify)."""

    slot: str  # temporary: dropped with `feed`'s session, so a killed cutover leaves nothing
    feed: psycopg.Connection  # replication session owning the slot: drains it, writes fences
    then: psycopg.Connection  # an open REPEATABLE READ transaction in the slot's snapshot S
    now: psycopg.Connection  # under the lock, a REPEATABLE READ transaction: rows at the switch
    sums: dict[str, list[tuple]] = field(default_factory=dict)  # whole tables, in S
    changes: verify.Changes = field(default_factory=lambda: verify.Changes(_KEY_COLUMNS))
    fences: int = 0

    def close(self) -> None:
        for conn in (self.now, self.then, self.feed):
            conn.close()


def _create_slot(feed: psycopg.Connection, url: str, slot: str, timeout: float) -> str:
    """A temporary slot at X; returns the snapshot it exports, which sees exactly the commits
    before X (every later one the slot decodes). Creating it waits for the transactions running
    now; no statement_timeout applies to replication commands, so a long one is cancelled."""
    timer = threading.Timer(timeout, feed.cancel_safe)
    timer.start()
    try:
        (_, _, snapshot, _) = feed.execute(sql.SQL(
            "CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL {} EXPORT_SNAPSHOT").format(
            sql.Identifier(slot), sql.Identifier(verify.PLUGIN))).fetchone()
    except psycopg.errors.QueryCanceled:
        raise CutoverAborted(f"no temporary slot on {redact(url)} within {timeout:.0f} s "
                             "(a long transaction is running there)") from None
    finally:
        timer.cancel()
    return snapshot


def _open_check(url: str, slot: str, timeout: float) -> _Check:
    """Slot at X, the snapshot S it exports, and the whole tables' checksums in S."""
    connections = []
    try:
        feed = _connect(url, replication=True)
        connections.append(feed)
        feed.execute("SET synchronous_commit = on")  # a fence is flushed at once: _fence()
        snapshot = _create_slot(feed, url, slot, timeout)
        then = _connect(url)  # imports S before `feed` runs anything else (that ends the export)
        connections.append(then)
        then.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        then.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        connections.append(_connect(url))
        check = _Check(slot, *connections)
        check.sums = _checksums(then)
    except BaseException:
        for conn in connections:
            conn.close()
        raise
    return check


def _drain(check: _Check) -> None:
    """The keys of every change the slot decoded since the last call (it consumes them). A
    replication session takes the simple query protocol only: no parameters."""
    rows = check.feed.execute(sql.SQL(
        "SELECT data FROM pg_logical_slot_get_changes({}, NULL, NULL, {})").format(
        sql.Literal(check.slot), sql.SQL(", ").join(map(sql.Literal, verify.OPTIONS)))).fetchall()
    check.changes.add(data for (data,) in rows)


def _fence(check: _Check) -> str:
    """A transactional message in the WAL, committed with synchronous_commit = on: flushed when
    this returns, together with every commit made before it. (A commit with no other WAL, as
    of txid_current(), is asynchronous whatever synchronous_commit says; an asynchronous commit
    is visible before it is flushed, and a slot decodes flushed WAL only.)"""
    check.fences += 1
    token = f"{check.slot}-{check.fences}"
    check.feed.execute(sql.SQL("SELECT pg_logical_emit_message(true, {}, {})").format(
        sql.Literal(verify.FENCE_PREFIX), sql.Literal(token)))
    return token


def _sums_at_switch(check: _Check, deadline: float) -> dict[str, list[tuple]]:
    """Under the lock, the new side caught up: per table and bucket what the whole tables hold
    in the snapshot L taken now, from the sums in S and the rows of the keys written since
    (chirp.move.verify)."""
    check.now.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    check.now.execute("SELECT 1")  # takes L: every commit it sees precedes the fence below
    token = _fence(check)
    _drain(check)
    while token not in check.changes.fences:  # flushed, so decoded at once; never trusted
        if time.monotonic() > deadline:
            raise CutoverAborted(f"slot {check.slot} did not decode its fence in time")
        time.sleep(0.01)
        _drain(check)
    sums = {}
    for table in layout.TABLES:
        keys = check.changes.keys.get(table.name)
        if table.name in check.changes.whole:  # e.g. a TRUNCATE: read it all again
            sums[table.name] = check.now.execute(layout.checksum_sql(table)).fetchall()
        elif not keys:
            sums[table.name] = check.sums[table.name]
        else:
            query = layout.keyed_checksum_sql(table)
            params = verify.key_parameters(keys, len(table.key_columns))
            sums[table.name] = verify.combine(check.sums[table.name],
                                              check.then.execute(query, params).fetchall(),
                                              check.now.execute(query, params).fetchall())
    return sums


def _prepare(move: Move, switch: Switch, timeout: float) -> list[_Check]:
    """Before the lock: the undo streams (created disabled; positioned under the lock), then on
    every database, old and new, a temporary slot and the whole tables' checksums in the
    snapshot it exports."""
    for stream in switch.undo:
        _ensure_stream(move, stream, copy_data=False)
    if switch.undo:
        _progress(f"undo streams made: {len(switch.undo)}, to be positioned at the switch")
    urls = switch.old_urls + switch.new_urls
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:  # slots are per server: unique
        futures = [pool.submit(_open_check, url, f"chirp_{move.id}_v{os.getpid()}_{i}", timeout)
                   for i, url in enumerate(urls)]
    checks, errors = [], []
    for future in futures:
        try:
            checks.append(future.result())
        except BaseException as error:
            errors.append(error)
    try:
        if errors:
            raise errors[0]
        _in_parallel(_drain, checks)  # what was written meanwhile: the lock decodes only the rest
    except BaseException:
        for check in checks:
            check.close()
        raise
    return checks


def _position_undo(move: Move, switch: Switch) -> None:
    """Under the lock, new side caught up and still standby: each undo subscription will start
    from its publisher's WAL position now. Its slot, made before the lock, saw feed rows arrive
    since; they commit before this position, so they are skipped (never sent back), and every
    app write on the new side commits after it. The origin's position is WAL-logged on the
    subscriber, so a restart keeps it."""
    for stream in switch.undo:
        (lsn,) = move.publisher(stream).execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        advanced = move.subscriber(stream).execute(
            "SELECT pg_replication_origin_advance('pg_' || oid, %s::pg_lsn) FROM pg_subscription"
            " WHERE subname = %s", (str(lsn), stream.name)).fetchall()
        if len(advanced) != 1:
            raise CutoverAborted(f"undo stream {stream.name} is missing")


def _undo_positioned(move: Move, stream: layout.Stream) -> bool:
    row = move.subscriber(stream).execute(
        "SELECT o.remote_lsn FROM pg_subscription s LEFT JOIN pg_replication_origin_status o"
        " ON o.external_id = 'pg_' || s.oid WHERE s.subname = %s", (stream.name,)).fetchone()
    return row is not None and row[0] is not None and str(row[0]) != "0/0"


def _lock_all(urls: list[str], deadline: float) -> list[psycopg.Connection]:
    """One open transaction per database holding its tables in EXCLUSIVE mode."""
    locks = []
    try:
        for url in urls:
            conn = _connect(url)
            locks.append(conn)
            remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
            conn.execute(f"SET lock_timeout = {remaining_ms}")
            conn.execute("BEGIN")
            conn.execute(LOCK_TABLES)
    except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as error:
        for conn in locks:
            conn.close()
        raise CutoverAborted(f"could not lock the tables: {type(error).__name__}") from None
    except BaseException:
        for conn in locks:
            conn.close()
        raise
    return locks


def _retire_locked(move: Move, switch: Switch, indexes: list[int], bound_seconds: float,
                   decide_first: bool) -> dict:
    """Checksum everything and make the undo streams (writes go on), lock these old databases,
    wait for the new ones to hold all their rows, verify (re-reading only rows written since the
    checksums), position the undo streams, (record the decision,) retire them. Any failure
    before the decision rolls back: they stay live."""
    prepare_started = time.monotonic()
    checks = _prepare(move, switch, max(bound_seconds, 10.0))
    try:
        rows = sum(int(count) for check in checks[:len(switch.old)]
                   for table in check.sums.values() for _, count, _ in table)
        prepare_seconds = time.monotonic() - prepare_started
        _progress(f"checksummed before the lock: {rows} rows of the old side,"
                  f" {prepare_seconds:.1f} s with the undo streams")
        started = time.monotonic()
        locks = _lock_all([switch.old_urls[i] for i in indexes], started + bound_seconds)
        try:
            _progress(f"locked: writes to {len(locks)} database(s) wait")
            _caught_up(move, switch, indexes, started + bound_seconds)
            caught_up_at = time.monotonic()
            _progress("caught up: every feed delivered its mark")
            sums = _in_parallel(
                partial(_sums_at_switch, deadline=started + bound_seconds), checks)
            tables = _verification(sums[:len(switch.old)], sums[len(switch.old):])
            rechecked = sum(check.changes.count() for check in checks)
            if not all(t["ok"] for t in tables.values()):
                raise CutoverAborted(f"verification failed: {tables}")
            verified_at = time.monotonic()
            _progress(f"verified: counts and checksums per table and bucket match ({rechecked}"
                      " keys written since the checksums re-read)")
            _continue_id_sequences(switch)
            _position_undo(move, switch)
            undo_ready_at = time.monotonic()
            if decide_first:
                _set_phase(move, switch.committed, epoch=switch.epoch, tables=tables)
                _progress(f"decision recorded: {switch.committed}, epoch {switch.epoch}")
            for conn in locks:
                _set_routing(conn, "retired", switch.epoch, switch.new_urls, move.id)
                conn.execute("COMMIT")
            _progress(f"retired {len(locks)} database(s): their held writes are refused and"
                      " rerouted")
            return {"tables": tables, "locked_seconds": round(time.monotonic() - started, 3),
                    "catch_up_seconds": round(caught_up_at - started, 3),
                    "verify_seconds": round(verified_at - caught_up_at, 3),
                    "undo_slots_seconds": round(undo_ready_at - verified_at, 3),
                    "prepare_seconds": round(prepare_seconds, 3), "rechecked_keys": rechecked}
        finally:
            for conn in locks:
                conn.close()  # rolls back whatever did not commit: the old side stays live
    finally:
        for check in checks:
            check.close()


def _continue_id_sequences(switch: Switch) -> None:
    """Ids are (ms, bucket, sequence % 4096): the new side continues the old side's sequence so
    a clock a little behind cannot mint an id the old side already used."""
    last = max(conn.execute("SELECT last_value FROM chirp_id_seq").fetchone()[0]
               for conn in switch.old)
    for conn in switch.new:
        conn.execute("SELECT setval('chirp_id_seq', greatest(last_value, %s)) FROM chirp_id_seq",
                     (last,))


def _finish(move: Move, switch: Switch, bound_seconds: float) -> dict:
    """After the commit point: retire what is still live, make the new side live, swap streams."""
    report = {}
    # Only after a kill between the decision and the commits: those still live took writes
    # since, which the feeds copied and the undo slots saw arrive. Lock them all together (the
    # retired ones no longer change), remake the undo streams and position them anew.
    redo = [i for i, conn in enumerate(switch.old) if _routing(conn)[0] == "live"]
    if not redo and not all(_undo_positioned(move, s) for s in switch.undo):
        # Cannot happen (they are positioned before the decision), unless someone dropped one:
        # while the new side is not live the switch can be made again, exactly.
        if any(_routing(conn)[0] == "live" for conn in switch.new):
            raise MoveRefused("an undo stream is missing or was never positioned, and the new "
                              "side already takes writes: it cannot be made exact; look at "
                              + ", ".join(s.name for s in switch.undo))
        redo = list(range(len(switch.old)))
    if redo:
        _drop_streams(move, switch.undo)
        report = _retire_locked(move, switch, redo, bound_seconds, decide_first=False)
    for conn in switch.new:
        state, epoch, _ = _routing(conn)
        if state != "live" or epoch != switch.epoch:
            _set_routing(conn, "live", switch.epoch, switch.new_urls, move.id)
    _progress(f"live: {len(switch.new)} database(s) take writes at epoch {switch.epoch}")
    _drop_streams(move, switch.feeds)  # before undo streams start: no loop between the sides
    _progress("feeds dropped")
    _enable(move, switch.undo)
    if switch.undo:
        _progress(f"undo streams on: {len(switch.undo)} keep the old side in sync")
    return report


def _switch(move: Move, switch: Switch, phase: str, bound_seconds: float) -> dict:
    report = {}
    if phase != switch.committed:
        _drop_streams(move, switch.undo)  # left by an attempt killed before its commit point
        try:
            report = _retire_locked(move, switch, list(range(len(switch.old))), bound_seconds,
                                    decide_first=True)
        except CutoverAborted:
            _drop_streams(move, switch.undo)  # made for this attempt; the next makes its own
            raise
        _progress(f"writes were held {report['locked_seconds']}s")
    report.update(_finish(move, switch, bound_seconds))
    _set_phase(move, switch.done, **{k: v for k, v in report.items() if k != "tables"})
    _progress(f"done: {switch.done}")
    return report


def _ready(move: Move) -> bool:
    return all(_stream_status(move, s)["initial_copy_done"] for s in move.forward())


def _work_for(move: Move, command: str) -> tuple[str | None, bool]:
    """The move's phase, and whether `command` has work to do in it (raises when refused)."""
    record = _record(move)
    phase = record and record["phase"]
    decision = steps.decide(command, phase)
    if decision.action == "refuse":
        raise MoveRefused(decision.reason)
    return phase, decision.action == "run"


def _epoch_for(move: Move, committed: str) -> int:
    """A step killed after its commit point keeps the epoch it recorded; a new one passes all."""
    record = _record(move)
    if record["phase"] == committed:
        return record["epoch"]
    return max(_routing(conn)[1] for conn in move.sources + move.targets) + 1


def cutover(move: Move, bound_seconds: float = 10.0, ready_timeout: float = 3600.0) -> dict:
    phase, work = _work_for(move, "cutover")
    if not work:
        return status(move)
    give_up = time.monotonic() + ready_timeout
    while phase == steps.COPYING and not _ready(move):
        if time.monotonic() > give_up:
            raise MoveRefused("the initial copy is not finished; run `status`, cutover later")
        time.sleep(0.2)
    switch = Switch(move.source_urls, move.sources, move.target_urls, move.targets,
                    move.forward(), move.back(), steps.CUTOVER_COMMITTED, steps.CUT_OVER,
                    _epoch_for(move, steps.CUTOVER_COMMITTED))
    report = _switch(move, switch, phase, bound_seconds)
    return dict(status(move), cutover=report)


def reverse(move: Move, bound_seconds: float = 10.0) -> dict:
    phase, work = _work_for(move, "reverse")
    if not work:
        return status(move)
    switch = Switch(move.target_urls, move.targets, move.source_urls, move.sources,
                    move.back(), [], steps.REVERSE_COMMITTED, steps.REVERSED,
                    _epoch_for(move, steps.REVERSE_COMMITTED))
    report = _switch(move, switch, phase, bound_seconds)
    return dict(status(move), reverse=report)


def complete(move: Move) -> dict:
    _, work = _work_for(move, "complete")
    if work:
        _drop_streams(move, move.back() + move.forward())
        _set_phase(move, steps.COMPLETED)
    return status(move)


def abort(move: Move) -> dict:
    phase, work = _work_for(move, "abort")
    if work:
        _drop_streams(move, move.forward() + move.back())
        if phase == steps.COPYING:  # the targets go back to empty and unused
            for conn in move.targets:
                with conn.transaction():
                    conn.execute("SET LOCAL session_replication_role = replica")
                    conn.execute("TRUNCATE " + ", ".join(t.name for t in layout.TABLES))
                    conn.execute("UPDATE chirp_routing SET state = 'live', move_id = NULL,"
                                 " changed_at = now() WHERE move_id = %s", (move.id,))
        move.coordinator.execute("DELETE FROM chirp_moves WHERE move_id = %s", (move.id,))
    return dict(status(move), aborted=True)
