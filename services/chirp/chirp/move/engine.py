"""The one engine behind copy, reshard and merge.

1. migrate every target; start a run there, or resume the unfinished run for the same sources
2. fence every source (read-only + end its sessions): the data stops changing
3. copy table by table, source by source, in key order; each batch goes to its rows' targets with
   ON CONFLICT DO NOTHING and a checkpoint in the same transaction -> killed anywhere, rerun resumes
4. verify per target and table: row counts and checksums equal what the sources hold for the
   target's buckets, and no row sits on the wrong target
5. unfence the targets (they become the live databases); sources stay fenced
"""

import json
import sys
import time

import psycopg
from psycopg.types.json import Jsonb

from chirp.db.migrate import migrate
from chirp.move import plan
from chirp.move.fence import fence, is_fenced, unfence


class MoveRefused(Exception):
    """The move would be unsafe as asked (exit code 2, nothing changed)."""


def _connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10, options="-c TimeZone=UTC")
    conn.execute("SET default_transaction_read_only = off")  # this job may write to fenced targets
    return conn


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _has_data(conn) -> bool:
    return any(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t.name})").fetchone()[0]
               for t in plan.TABLES)


def _start_or_resume(conn, identity: str, overwrite: bool, label: str) -> str:
    run = conn.execute("SELECT finished_at FROM chirp_move_runs WHERE sources = %s",
                       (identity,)).fetchone()
    if run is not None and run[0] is None:
        return "resume"
    if run is not None:
        return "finished"
    if _has_data(conn) and not is_fenced(conn) and not overwrite:
        raise MoveRefused(f"target {label} already holds data and is live (not fenced); "
                          "refusing to overwrite it (pass --overwrite if it is really disposable)")
    with conn.transaction():
        conn.execute("TRUNCATE " + ", ".join(t.name for t in reversed(plan.TABLES))
                     + ", chirp_move_checkpoints")
        conn.execute("DELETE FROM chirp_move_runs")
        conn.execute("INSERT INTO chirp_move_runs (sources) VALUES (%s)", (identity,))
    return "fresh"


def _checkpoint(conn, source: str, table: str):
    row = conn.execute("SELECT last_key FROM chirp_move_checkpoints"
                       " WHERE source = %s AND table_name = %s", (source, table)).fetchone()
    return row[0] if row else None


def _copy_table(spec, source_name, source_conn, targets, batch_size, throttle) -> int:
    after = plan.resume_key([_checkpoint(t, source_name, spec.name) for t in targets])
    copied = 0
    while True:
        params = (*(after or ()), batch_size)
        rows = source_conn.execute(plan.batch_sql(spec, after is not None), params).fetchall()
        if not rows:
            return copied
        after = plan.key_of(spec, rows[-1])
        for target_conn, target_rows in zip(targets, plan.split_rows(spec, rows, len(targets))):
            with target_conn.transaction():
                if target_rows:
                    with target_conn.cursor() as cur:
                        cur.executemany(plan.insert_sql(spec), target_rows)
                target_conn.execute(
                    "INSERT INTO chirp_move_checkpoints (source, table_name, last_key)"
                    " VALUES (%s, %s, %s) ON CONFLICT (source, table_name)"
                    " DO UPDATE SET last_key = EXCLUDED.last_key",
                    (source_name, spec.name, Jsonb(after)))
        copied += len(rows)
        _progress(f"batch {spec.name} from {source_name}: {len(rows)} rows (up to key {after})")
        if throttle:
            time.sleep(throttle)


def _per_bucket(conn, spec) -> list[tuple[int, int, int]]:
    return [tuple(row) for row in conn.execute(plan.checksum_sql(spec)).fetchall()]


def _verify(sources, targets) -> dict:
    report = {}
    for spec in plan.TABLES:
        source_buckets = [row for conn in sources for row in _per_bucket(conn, spec)]
        expected = plan.totals_per_target(source_buckets, len(targets))
        actual = []
        for k, conn in enumerate(targets):
            buckets = _per_bucket(conn, spec)
            actual.append({"rows": sum(int(r) for _, r, _ in buckets),
                           "checksum": sum(int(c) for _, _, c in buckets),
                           "misplaced": plan.misplaced_rows(buckets, k, len(targets))})
        ok = all(a["rows"] == e["rows"] and a["checksum"] == e["checksum"] and a["misplaced"] == 0
                 for a, e in zip(actual, expected))
        report[spec.name] = {
            "ok": ok,
            "source_rows": sum(e["rows"] for e in expected),
            "targets": [{"rows": a["rows"], "checksum": str(a["checksum"]),
                         "expected_rows": e["rows"], "expected_checksum": str(e["checksum"]),
                         "misplaced": a["misplaced"]} for a, e in zip(actual, expected)],
        }
    return report


def run_move(command: str, source_urls: list[str], target_urls: list[str], *,
             batch_size: int = 1000, throttle_seconds: float = 0.0, overwrite: bool = False) -> dict:
    started = time.monotonic()
    source_names = [plan.redact(url) for url in source_urls]
    target_names = [plan.redact(url) for url in target_urls]
    if set(source_names) & set(target_names):
        raise MoveRefused("a database cannot be both a source and a target")
    identity = plan.sources_identity(source_urls)

    for url in target_urls:
        migrate(url)
    targets = [_connect(url) for url in target_urls]
    sources = [_connect(url) for url in source_urls]
    try:
        modes = [_start_or_resume(conn, identity, overwrite, name)
                 for conn, name in zip(targets, target_names)]
        summary = {"command": command, "sources": source_names, "targets": target_names}
        if all(mode == "finished" for mode in modes):
            summary.update(ok=True, already_finished=True, copied_rows=0,
                           seconds=round(time.monotonic() - started, 3))
            return summary
        if "finished" in modes:  # a mixed state means someone else moved data since
            raise MoveRefused("some targets finished this move earlier and others did not; "
                              "refusing to guess (inspect chirp_move_runs)")
        sessions_ended = sum(fence(conn) for conn in sources)
        for conn in sources:  # a source has been live: runs that once filled it are history
            if conn.execute("SELECT to_regclass('chirp_move_runs')").fetchone()[0]:
                conn.execute("DELETE FROM chirp_move_runs")
        _progress(f"fenced {len(sources)} source(s), ended {sessions_ended} session(s)")
        copied = {}
        for spec in plan.TABLES:
            copied[spec.name] = sum(
                _copy_table(spec, name, conn, targets, batch_size, throttle_seconds)
                for name, conn in zip(source_names, sources))
        tables = _verify(sources, targets)
        ok = all(t["ok"] for t in tables.values())
        if ok:
            for conn in targets:
                conn.execute("UPDATE chirp_move_runs SET finished_at = now() WHERE sources = %s",
                             (identity,))
                unfence(conn)
        summary.update(ok=ok, resumed="resume" in modes, copied_rows=sum(copied.values()),
                       copied=copied, tables=tables, sources_fenced=True, targets_live=ok,
                       seconds=round(time.monotonic() - started, 3))
        return summary
    finally:
        for conn in sources + targets:
            conn.close()


def print_summary(summary: dict) -> None:
    print(json.dumps(summary, indent=2, sort_keys=True), flush=True)
