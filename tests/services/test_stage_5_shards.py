"""Stage 5: users split over real shards by bucket, a real Celery worker (Redis broker) fanning
posts out idempotently, with retries, and scatter-gather when a fanned-out timeline can't answer."""

import time

import psycopg
import pytest
import redis

from chirp.buckets import bucket_for_username, shard_for_bucket
from chirp.db.migrate import migrate
from chirp.fanout import ready_key, timeline_key
from chirp.ids import id_bucket
from chirp.tasks import celery_for
from tests.fixtures.redis import RedisServer
from tests.services.conftest import (ChirpProcess, bodies, config_for, follow, post, rows, signup,
                                     stage_env, unique_name)

SHARDS = 3


@pytest.fixture(scope="module")
def stage5(postgres_cluster, tmp_path_factory):
    """Three shard databases (each with a streaming replica), a Redis, and a real worker."""
    names = [postgres_cluster.create_database() for _ in range(SHARDS)]
    redis_server = RedisServer.start_new()
    worker = None
    try:
        for name in names:
            migrate(postgres_cluster.primary.url(name))
        postgres_cluster.wait_replicated()
        env = stage_env(5, shards=[postgres_cluster.primary.url(n) for n in names],
                        shard_replicas=[postgres_cluster.replicas[0].url(n) for n in names],
                        redis_url=redis_server.url(0), broker_url=redis_server.url(1))
        log = tmp_path_factory.mktemp("worker") / "worker.log"
        worker = ChirpProcess(["worker", "--concurrency", "2"], env, str(log))
        worker.wait_for_log("ready.", timeout=60)
        yield {"env": env, "worker": worker, "redis": redis_server, "names": names}
    finally:
        if worker is not None:
            worker.stop()
        redis_server.stop()
        for name in names:
            postgres_cluster.drop_database(name)


@pytest.fixture
def app(stage5, make_app):
    return make_app(config_for(stage5["env"],
                               replica_check_seconds=0.1, max_replica_lag_seconds=1.0))


def shard_of(name: str) -> int:
    return shard_for_bucket(bucket_for_username(name), SHARDS)


def wait_until(check, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def in_timeline(stage5, user_id: int) -> list[int]:
    r = redis.Redis.from_url(stage5["redis"].url(0))
    return [int(x) for x in r.zrevrange(timeline_key(user_id), 0, -1)]


def test_users_and_posts_live_on_the_shard_of_their_bucket(app, stage5):
    shard_urls = stage5["env"]["CHIRP_SHARD_URLS"].split(",")
    names = [signup(app.test_client()) for _ in range(12)]
    assert len({shard_of(n) for n in names}) > 1, "12 users should spread over shards"
    for name in names:
        holders = [k for k, url in enumerate(shard_urls)
                   if rows(url, "SELECT 1 FROM users WHERE username = %s", (name,))]
        assert holders == [shard_of(name)], name
        (user_id,) = rows(shard_urls[shard_of(name)], "SELECT id FROM users WHERE username=%s",
                          (name,))[0]
        assert id_bucket(user_id) == bucket_for_username(name)
    client = app.test_client()
    name = signup(client)
    created = post(client, "on my shard")
    assert id_bucket(int(created["id"])) == bucket_for_username(name)
    response = client.post("/api/posts", json={"body": "where did this go"})
    assert response.headers["X-Chirp-DB"] == f"shard-{shard_of(name)}"


def test_worker_fans_posts_out_to_followers_on_every_shard(app, stage5):
    author = app.test_client()
    author_name = signup(author)
    followers = []
    while len({shard_of(n) for n, _ in followers}) < SHARDS or len(followers) < 4:
        client = app.test_client()
        followers.append((signup(client), client))
    for _, client in followers:
        follow(client, author_name)
    for _, client in followers:  # the follow dropped the timeline; wait for the rebuild task
        wait_until(lambda c=client: c.get("/api/timeline").headers.get("X-Chirp-Timeline") == "fanout",
                   what="timeline rebuilt by the worker")
    created = post(author, "fan me out")
    post_id = int(created["id"])
    me = {n: int(c.get("/api/me").get_json()["user"]["id"]) for n, c in followers}
    for name, client in followers:
        wait_until(lambda uid=me[name]: post_id in in_timeline(stage5, uid), what="fan-out")
        response = client.get("/api/timeline")
        assert response.headers["X-Chirp-Timeline"] == "fanout"
        assert bodies(response) == ["fan me out"]
    # The author sees their own post at once, in their own fanned-out timeline.
    assert bodies(author.get("/api/timeline")) == ["fan me out"]


def test_fanout_task_retries_until_the_post_is_committed(app, stage5):
    author = app.test_client()
    name = signup(author)
    author_id = int(author.get("/api/me").get_json()["user"]["id"])
    shard_url = stage5["env"]["CHIRP_SHARD_URLS"].split(",")[shard_of(name)]
    celery = celery_for(app.extensions["chirp"].config)
    with psycopg.connect(shard_url) as conn:  # a transaction we keep open on purpose
        (post_id,) = conn.execute(
            "INSERT INTO posts (id, author_id, body) VALUES (chirp_next_id(%s), %s, 'late')"
            " RETURNING id", (bucket_for_username(name), author_id)).fetchone()
        celery.send_task("chirp.fanout_post", args=[post_id])
        # Commit only once the worker has seen the post missing and scheduled a retry (waiting on
        # its log, not on a clock: a busy CI machine may start the task late).
        wait_until(lambda: "Retry in" in stage5["worker"].log(), what="the task to schedule a retry")
        assert post_id not in in_timeline(stage5, author_id)
        conn.commit()
    wait_until(lambda: post_id in in_timeline(stage5, author_id), what="fan-out after retry")


def test_a_repeated_fanout_never_duplicates_an_entry(app, stage5):
    author, reader = app.test_client(), app.test_client()
    author_name = signup(author)
    signup(reader)
    follow(reader, author_name)
    reader_id = int(reader.get("/api/me").get_json()["user"]["id"])
    wait_until(lambda: reader.get("/api/timeline").headers.get("X-Chirp-Timeline") == "fanout",
               what="timeline rebuilt")
    post_id = int(post(author, "only once")["id"])
    wait_until(lambda: post_id in in_timeline(stage5, reader_id), what="fan-out")
    celery = celery_for(app.extensions["chirp"].config)
    for _ in range(3):
        celery.send_task("chirp.fanout_post", args=[post_id])
    r = redis.Redis.from_url(stage5["redis"].url(1))
    wait_until(lambda: r.llen("chirp") == 0, what="queue drained")
    time.sleep(0.5)
    assert in_timeline(stage5, reader_id).count(post_id) == 1
    assert bodies(reader.get("/api/timeline")) == ["only once"]


def test_timeline_falls_back_to_scatter_gather_across_shards(app, stage5):
    reader = app.test_client()
    signup(reader)
    reader_id = int(reader.get("/api/me").get_json()["user"]["id"])
    authors = {}
    while len(authors) < SHARDS:
        client = app.test_client()
        name = signup(client)
        if shard_of(name) not in authors:
            post(client, f"from shard {shard_of(name)}")
            authors[shard_of(name)] = name
    for name in authors.values():
        follow(reader, name)
    r = redis.Redis.from_url(stage5["redis"].url(0))
    time.sleep(0.5)
    wait_until(lambda: r.exists(ready_key(reader_id)), what="rebuild after the follows")
    r.delete(ready_key(reader_id))  # the fanned-out timeline cannot answer any more
    response = reader.get("/api/timeline")
    assert response.headers["X-Chirp-Timeline"].startswith("scatter-gather")
    assert sorted(bodies(response)) == sorted(f"from shard {k}" for k in range(SHARDS))
    shards_read = {label.split("-")[1] for label in response.headers["X-Chirp-DB"].split(",")}
    assert len(shards_read) >= 2, response.headers["X-Chirp-DB"]


def test_public_page_gathers_from_every_shard(app, stage5):
    names = {}
    while len(names) < SHARDS:
        client = app.test_client()
        name = signup(client)
        if shard_of(name) not in names:
            names[shard_of(name)] = name
            post(client, f"public {name}")
    got = bodies(app.test_client().get("/api/public", query_string={"limit": 50}))
    assert all(f"public {n}" in got for n in names.values())


def test_unknown_variables_do_not_matter_but_bad_ones_are_named(stage5):
    from chirp.config import ConfigError, load_config

    env = dict(stage5["env"], CHIRP_SHARD_REPLICA_URLS="postgresql://x@h/db")
    with pytest.raises(ConfigError, match="CHIRP_SHARD_REPLICA_URLS"):
        load_config(env)
    assert unique_name() != unique_name()
