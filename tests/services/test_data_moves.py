"""copy (stage 1<->2), reshard (4->5), merge (5->4): fenced, verified, resumable after a kill."""

import json
import random
import signal
import subprocess
import time

import pytest

from chirp.buckets import shard_for_id
from tests.fixtures import processes
from tests.services.conftest import (bodies, chirp_command, config_for, follow, post, rows,
                                     run_chirp, signup, stage_env)

ALL_ROWS = {
    "users": "SELECT id, username, password_hash, created_at FROM users ORDER BY id",
    "posts": "SELECT id, author_id, body, created_at FROM posts ORDER BY id",
    "follows": "SELECT follower_id, followee_id, created_at FROM follows ORDER BY 1, 2",
}


def snapshot(*urls) -> dict:
    """Every row of every table across these databases, sorted."""
    return {table: sorted(row for url in urls for row in rows(url, sql))
            for table, sql in ALL_ROWS.items()}


@pytest.fixture
def populated(migrated_db, make_app):
    """A stage-2 database with users, posts and follows made through the app."""
    app = make_app(config_for(stage_env(2, database=migrated_db.primary_url)))
    clients = [app.test_client() for _ in range(15)]
    names = [signup(c) for c in clients]
    rng = random.Random(7)
    for i, client in enumerate(clients):
        for j in range(8):
            post(client, f"post {j} by {names[i]}")
        for other in rng.sample([n for n in names if n != names[i]], 3):
            follow(client, other)
    return {"db": migrated_db, "app": app, "clients": clients, "names": names}


@pytest.fixture
def new_dbs(postgres_cluster):
    """Empty databases to move data into (dropped afterwards)."""
    made = []

    def make(n=1):
        names = [postgres_cluster.create_database() for _ in range(n)]
        made.extend(names)
        return [postgres_cluster.primary.url(name) for name in names]

    yield make
    for name in made:
        postgres_cluster.drop_database(name)


def move(command, sources, targets, *extra):
    result = run_chirp(command, "--from", ",".join(sources), "--to", ",".join(targets), *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    return summary


def test_copy_fences_the_source_and_the_target_takes_over(populated, new_dbs, make_app):
    source = populated["db"].primary_url
    (target,) = new_dbs()
    before = snapshot(source)
    summary = move("copy", [source], [target])
    assert summary["tables"]["posts"]["source_rows"] == 15 * 8
    assert all(t["ok"] for t in summary["tables"].values())
    assert snapshot(target) == before

    # The old database is fenced: writes get 503 + Retry-After, reads still work.
    old_client = populated["clients"][0]
    refused = old_client.post("/api/posts", json={"body": "too late"})
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert "paused" in refused.get_json()["error"]
    assert old_client.get("/api/timeline").status_code == 200

    # The app pointed at the copy has everything and accepts writes again.
    moved = make_app(config_for(stage_env(2, database=target)))
    client = moved.test_client()
    name = populated["names"][0]
    assert client.post("/api/login", json={"username": name, "password": "correct horse"}).status_code == 200
    assert bodies(client.get(f"/api/users/{name}"))[0] == f"post 7 by {name}"
    post(client, "after the move")
    assert snapshot(source) == before  # nothing leaked into the fenced source


def test_reshard_then_merge_round_trip(populated, new_dbs, make_app, redis_url):
    source = populated["db"].primary_url
    before = snapshot(source)
    shards = new_dbs(3)
    summary = move("reshard", [source], shards)
    assert [t["misplaced"] for t in summary["tables"]["posts"]["targets"]] == [0, 0, 0]
    assert sum(t["rows"] for t in summary["tables"]["users"]["targets"]) == 15
    for k, url in enumerate(shards):  # every row sits on the shard of its owner's bucket
        assert all(shard_for_id(uid, 3) == k for (uid,) in rows(url, "SELECT id FROM users"))
        assert all(shard_for_id(a, 3) == k for (a,) in rows(url, "SELECT author_id FROM posts"))
    assert snapshot(*shards) == before

    # Stage 5 on the shards serves everyone's data.
    sharded = make_app(config_for(stage_env(5, shards=shards, redis_url=redis_url,
                                            broker_url=redis_url)))
    for name in populated["names"]:
        page = sharded.test_client().get(f"/api/users/{name}")
        assert page.status_code == 200 and len(bodies(page)) == 8

    (merged,) = new_dbs()
    summary = move("merge", shards, [merged])
    assert summary["tables"]["follows"]["source_rows"] == 15 * 3
    assert snapshot(merged) == before


@pytest.mark.parametrize("command,targets", [("copy", 1), ("reshard", 2)])
def test_killed_half_way_and_resumed_loses_and_duplicates_nothing(populated, new_dbs, command,
                                                                  targets):
    source = populated["db"].primary_url
    before = snapshot(source)
    destinations = new_dbs(targets)
    args = chirp_command(command, "--from", source, "--to", ",".join(destinations),
                         "--batch-size", "10", "--throttle-ms", "150")
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    batches = 0
    for line in proc.stderr:  # wait until the posts table is half copied
        if line.startswith("batch posts"):
            batches += 1
            if batches == 5:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    partial = sum(len(rows(url, "SELECT id FROM posts")) for url in destinations)
    assert 0 < partial < 120

    summary = move(command, [source], destinations)
    assert summary["resumed"] is True
    assert summary["copied"]["users"] == 0  # users were finished before the kill
    assert summary["copied"]["posts"] < 120  # resumed mid-table, not from scratch
    assert snapshot(*destinations) == before


def test_a_finished_move_run_again_changes_nothing(populated, new_dbs):
    (target,) = new_dbs()
    move("copy", [populated["db"].primary_url], [target])
    again = move("copy", [populated["db"].primary_url], [target])
    assert again["already_finished"] is True


def test_refuses_to_overwrite_a_live_database(populated, migrated_db, new_dbs):
    (other,) = new_dbs()
    move("copy", [populated["db"].primary_url], [other])  # `other` is now live with data
    (fresh,) = new_dbs()
    result = run_chirp("copy", "--from", fresh, "--to", other)
    assert result.returncode == 2 and "refusing to overwrite" in result.stderr
    result = run_chirp("merge", "--from", other, "--to", fresh)
    assert result.returncode == 2 and "expected --from with two or more URLs" in result.stderr


def test_migrations_are_safe_when_many_pods_start_at_once(pg_database):
    procs = [subprocess.Popen(chirp_command("migrate", "--url", pg_database.primary_url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    applied = rows(pg_database.primary_url, "SELECT version FROM schema_migrations ORDER BY 1")
    assert applied == [(1,), (2,)]
    assert sum("applied [1, 2]" in out for out, _ in outputs) == 1
    assert sum("up to date" in out for out, _ in outputs) == 3


def test_ids_minted_by_postgres_match_the_python_layout(migrated_db):
    from chirp.ids import id_bucket, id_unix_ms

    now_ms = time.time() * 1000
    ids = [rows(migrated_db.primary_url, "SELECT chirp_next_id(%s)", (b,))[0][0]
           for b in (0, 513, 1023)]
    assert [id_bucket(i) for i in ids] == [0, 513, 1023]
    assert all(abs(id_unix_ms(i) - now_ms) < 5000 for i in ids)
    assert ids[0] < ids[1] < ids[2] or len(set(ids)) == 3
    assert processes.free_port() > 0
