"""Stage 3: writes to the primary, reads spread over real streaming replicas, read-your-writes,
lagging or dead replicas skipped, no replica -> primary."""

import json
import time
from collections import Counter

import psycopg
import pytest

from tests.fixtures.processes import free_port
from tests.polling import wait_until
from tests.services.conftest import (
    bodies,
    config_for,
    post,
    replicas_holding_writes_until,
    signup,
    stage_env,
    usable_replicas,
)

TUNED = dict(replica_check_seconds=0.1, max_replica_lag_seconds=1.0)


def routes(client, path, n=12) -> Counter:
    return Counter(client.get(path).headers["X-Chirp-DB"] for _ in range(n))


@pytest.fixture
def app(migrated_db, make_app):
    env = stage_env(3, database=migrated_db.primary_url, replicas=migrated_db.replica_urls)
    return make_app(config_for(env, **TUNED))


def test_reads_spread_over_replicas_writes_go_to_primary(app):
    client = app.test_client()
    signup(client)
    response = client.post("/api/posts", json={"body": "a write"})
    assert response.headers["X-Chirp-DB"] == "primary"
    seen = routes(app.test_client(), "/api/public")
    assert set(seen) == {"replica-1", "replica-2"}, seen


def test_read_your_writes_against_real_replicas(migrated_db, make_app, postgres_cluster):
    env = stage_env(3, database=migrated_db.primary_url, replicas=migrated_db.replica_urls)
    # Health measured once, then not again for a minute: no replica is known to hold a new write,
    # so the writer reads from the primary while everyone else reads from replicas.
    frozen = make_app(config_for(env, replica_check_seconds=60, max_replica_lag_seconds=5))
    assert frozen.test_client().get("/api/public").headers["X-Chirp-DB"].startswith("replica-")
    client = frozen.test_client()
    signup(client)
    post(client, "my fresh post")
    for _ in range(3):
        right_after = client.get("/api/timeline")
        assert right_after.headers["X-Chirp-DB"] == "primary"
        assert bodies(right_after) == ["my fresh post"]
    assert frozen.test_client().get("/api/public").headers["X-Chirp-DB"].startswith("replica-")

    # Measured continuously: once a check proves a replica replayed the write, it serves the writer.
    live = make_app(config_for(env, **TUNED))
    client = live.test_client()
    signup(client)
    post(client, "replicated post")

    def read_by_a_replica():
        response = client.get("/api/timeline")
        return response if response.headers["X-Chirp-DB"].startswith("replica-") else None

    later = wait_until(read_by_a_replica, what="a health check to prove a replica holds the "
                                               "write, so that a replica serves the writer")
    assert bodies(later) == ["replicated post"]


def test_lagging_replica_is_skipped(app, postgres_cluster, migrated_db):
    lagging = migrated_db.replica_urls[0]
    with psycopg.connect(lagging, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            writer = app.test_client()
            signup(writer)
            for i in range(3):
                post(writer, f"replica 1 will not see this {i}")
            posted_at = time.time()
            wait_until(lambda: usable_replicas(app) == [1],
                       what="replica 1 to fall behind beyond max_replica_lag_seconds")
            wait_until(lambda: replicas_holding_writes_until(app, posted_at) == [1],
                       what="replica 2 to be proven to hold the posts")
            seen = routes(app.test_client(), "/api/public")
            assert set(seen) == {"replica-2"}, seen
            fresh = app.test_client().get("/api/public")
            assert "replica 1 will not see this 2" in bodies(fresh)
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")
    postgres_cluster.wait_replicated()
    wait_until(lambda: "replica-1" in routes(app.test_client(), "/api/public"),
               what="replica 1 to be used again once it caught up")


def test_dead_replica_is_skipped_and_none_left_means_primary(migrated_db, make_app):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/{migrated_db.name}"
    env = stage_env(3, database=migrated_db.primary_url,
                    replicas=(dead, migrated_db.replica_urls[1]))
    app = make_app(config_for(env, **TUNED))
    assert set(routes(app.test_client(), "/api/public")) == {"replica-2"}

    only_dead = make_app(config_for(stage_env(3, database=migrated_db.primary_url,
                                              replicas=(dead,)), **TUNED))
    response = only_dead.test_client().get("/api/public")
    assert response.status_code == 200 and response.headers["X-Chirp-DB"] == "primary"


def test_no_replicas_configured_reads_primary(migrated_db, make_app):
    app = make_app(config_for(stage_env(3, database=migrated_db.primary_url), **TUNED))
    assert set(routes(app.test_client(), "/api/public", n=3)) == {"primary"}


def test_readiness_checks_the_primary(app):
    response = app.test_client().get("/readyz")
    assert response.status_code == 200 and response.get_json()["databases"] == {"primary": True}


def test_a_lost_primary_leaves_the_pod_ready_while_a_replica_serves_reads(migrated_db, make_app):
    """Stage 3: the primary gone stops writes; the replicas still answer reads, so the web pods
    stay in the Service (unready, they would take the reads down with the primary)."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/{migrated_db.name}"
    client = make_app(config_for(stage_env(3, database=dead,
                                           replicas=(dead, migrated_db.replica_urls[1])),
                                 **TUNED)).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["databases"] == {"primary": False, "replica-1": False,
                                             "replica-2": True}
    assert client.get("/api/public").headers["X-Chirp-DB"] == "replica-2"
    # nothing answers at all: not ready
    nobody = make_app(config_for(stage_env(3, database=dead, replicas=(dead,)), **TUNED))
    assert nobody.test_client().get("/readyz").status_code == 503


def write_architecture(path, stage: int, name: str) -> None:
    """As the kubelet updates a mounted ConfigMap: a new file put in place in one step."""
    new = path.with_name(path.name + ".new")
    new.write_text(json.dumps({"stage": stage, "stageName": name, "components": [],
                               "spofs": []}))
    new.replace(path)


def test_a_running_app_follows_the_architecture_file_between_stages_2_and_3(
        migrated_db, make_app, tmp_path):
    """The operator steps 2 -> 3 -> 2 by changing only the mounted architecture document (the web
    pods are not restarted): the running app reports the new stage and starts or stops reading
    from replicas, and the session it holds in its process stays valid throughout."""
    path = tmp_path / "architecture.json"
    write_architecture(path, 2, "separate-db")
    env = stage_env(2, database=migrated_db.primary_url, replicas=migrated_db.replica_urls,
                    CHIRP_ARCHITECTURE_FILE=str(path))
    del env["CHIRP_STAGE"]  # as in a pod: the stage is the document's
    app = make_app(config_for(env, **TUNED))
    user = app.test_client()
    username = signup(user)

    def reads(expected_stage: str) -> set:
        seen = {(r.headers["X-Chirp-Stage"], r.headers["X-Chirp-DB"])
                for r in (app.test_client().get("/api/public") for _ in range(6))}
        assert {stage for stage, _ in seen} == {expected_stage}, seen
        return {route for _, route in seen}

    assert reads("2") == {"primary"}
    assert app.test_client().get("/api/architecture").get_json()["databases"] == [
        {"route": "primary", "address": migrated_db.primary_url.split("@", 1)[1]}]

    write_architecture(path, 3, "load-balanced")
    assert wait_until(lambda: {"replica-1", "replica-2"} & reads("3"),
                      what="anonymous reads from a replica at stage 3")
    assert "stage 3 (load-balanced)" in app.test_client().get("/").get_data(as_text=True)
    me = user.get("/api/me")
    assert me.status_code == 200 and me.get_json()["user"]["username"] == username
    post(user, "written at stage 3")

    write_architecture(path, 2, "separate-db")
    assert reads("2") == {"primary"}
    assert user.get("/api/me").get_json()["user"]["username"] == username
    assert bodies(user.get("/api/timeline")) == ["written at stage 3"]
