"""Stage 5: users split over real shards by bucket, a real Celery worker (Redis broker) fanning
posts out idempotently, with retries, and scatter-gather when a fanned-out timeline can't answer."""

import re

import psycopg
import pytest
import redis

from chirp.buckets import bucket_for_username, shard_for_bucket
from chirp.db.migrate import migrate
from chirp.fanout import ready_key, timeline_key
from chirp.ids import id_bucket
from chirp.tasks import QUEUE
from tests.fixtures.redis import RedisServer
from tests.polling import wait_until
from tests.services.conftest import (
    ChirpProcess,
    bodies,
    config_for,
    follow,
    post,
    rows,
    signup,
    stage_env,
)

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
        # The worker takes up to `concurrency` tasks per fetch from the broker, a fetch every
        # second or two: a test's burst of rebuilds (one per follow) goes in one fetch, not six.
        worker = ChirpProcess(["worker", "--concurrency", "16"], env, str(log))
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


def in_timeline(stage5, user_id: int) -> list[int]:
    r = redis.Redis.from_url(stage5["redis"].url(0))
    return [int(x) for x in r.zrevrange(timeline_key(user_id), 0, -1)]


def task_outcome(stage5, task_id: str, outcome: str) -> str | None:
    """What the worker logged for one task: `succeeded` -> its return value, `retry` -> why."""
    pattern = {"succeeded": rf"\[{task_id}\] succeeded in [0-9.e-]+s: (\S+)",
               "retry": rf"\[{task_id}\] retry: (Retry in .*)"}[outcome]
    match = re.search(pattern, stage5["worker"].log())
    return match.group(1) if match else None


def worker_idle(app, stage5) -> bool:
    """Nothing queued, nothing running, reserved or scheduled for a retry in the worker."""
    broker = redis.Redis.from_url(stage5["redis"].url(1))
    if broker.llen(QUEUE):
        return False
    inspect = app.extensions["chirp"].queue.celery_app.control.inspect(timeout=2.0, limit=1)
    replies = [inspect.active(), inspect.reserved(), inspect.scheduled()]
    if any(reply is None for reply in replies):  # the worker did not answer (yet)
        return False
    return not any(tasks for reply in replies for tasks in reply.values())


def author_post_in_db(stage5, name: str, author_id: int, body: str) -> int:
    """A post written straight into its shard: no fan-out task is sent for it."""
    shard_url = stage5["env"]["CHIRP_SHARD_URLS"].split(",")[shard_of(name)]
    (post_id,) = rows(shard_url, "INSERT INTO posts (id, author_id, body)"
                                 " VALUES (chirp_next_id(%s), %s, %s) RETURNING id",
                      (bucket_for_username(name), author_id, body))[0]
    return post_id


def user_id(client) -> int:
    return int(client.get("/api/me").get_json()["user"]["id"])


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
        wait_until(lambda c=client: c.get("/api/timeline").headers.get("X-Chirp-Timeline")
                   == "fanout", what="timeline rebuilt by the worker")
    created = post(author, "fan me out")
    post_id = int(created["id"])
    me = {n: user_id(c) for n, c in followers}
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
    author_id = user_id(author)
    shard_url = stage5["env"]["CHIRP_SHARD_URLS"].split(",")[shard_of(name)]
    queue = app.extensions["chirp"].queue
    with psycopg.connect(shard_url) as conn:  # a transaction we keep open on purpose
        (post_id,) = conn.execute(
            "INSERT INTO posts (id, author_id, body) VALUES (chirp_next_id(%s), %s, 'late')"
            " RETURNING id", (bucket_for_username(name), author_id)).fetchone()
        task_id = queue.fanout_post(post_id)
        # Commit only once the worker has seen the post missing and scheduled a retry (waiting on
        # its log, not on a clock: a busy CI machine may start the task late).
        wait_until(lambda: task_outcome(stage5, task_id, "retry"),
                   what="the task to schedule a retry")
        assert post_id not in in_timeline(stage5, author_id)
        conn.commit()
    wait_until(lambda: post_id in in_timeline(stage5, author_id), what="fan-out after retry")


def test_a_repeated_fanout_writes_nothing_the_second_time(app, stage5):
    """At-least-once delivery may run a fan-out twice: the second run must add no entry. The
    task's return value is the number of timeline entries its ZADDs actually added."""
    author, reader = app.test_client(), app.test_client()
    author_name = signup(author)
    signup(reader)
    follow(reader, author_name)
    author_id, reader_id = user_id(author), user_id(reader)
    wait_until(lambda: reader.get("/api/timeline").headers.get("X-Chirp-Timeline") == "fanout",
               what="the reader's timeline rebuilt after the follow")
    r = redis.Redis.from_url(stage5["redis"].url(0))
    sizes_before = {uid: r.zcard(timeline_key(uid)) for uid in (author_id, reader_id)}
    post_id = author_post_in_db(stage5, author_name, author_id, "only once")
    queue = app.extensions["chirp"].queue

    first = queue.fanout_post(post_id)
    assert wait_until(lambda: task_outcome(stage5, first, "succeeded"),
                      what="the first fan-out") == "2"  # the author's and the reader's entry
    second = queue.fanout_post(post_id)
    assert wait_until(lambda: task_outcome(stage5, second, "succeeded"),
                      what="the repeated fan-out") == "0"  # ZADD of an existing member: nothing

    for uid in (author_id, reader_id):
        assert in_timeline(stage5, uid).count(post_id) == 1
        assert r.zcard(timeline_key(uid)) == sizes_before[uid] + 1
    assert bodies(reader.get("/api/timeline")) == ["only once"]


def test_timeline_falls_back_to_scatter_gather_across_shards(app, stage5):
    reader = app.test_client()
    signup(reader)
    reader_id = user_id(reader)
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
    # Each follow queued a rebuild; once they have all run, nothing sets the ready marker again.
    wait_until(lambda: worker_idle(app, stage5), what="the worker to finish the rebuilds")
    assert r.exists(ready_key(reader_id))
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
