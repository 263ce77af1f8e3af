"""Stage 4: Redis cache-aside with invalidation on write, stampede protection, sessions in Redis,
and a Redis that dies mid-test without the app answering 5xx."""

import threading

import pytest

from chirp import reads
from chirp.db import queries
from chirp.metrics import REDIS_ROUND_TRIPS, db_query_count
from chirp.trace import traced
from chirp.writes import create_post
from tests.fixtures import processes
from tests.polling import wait_until
from tests.services.conftest import (
    bodies,
    config_for,
    follow,
    post,
    signup,
    stage_env,
    wait_for_a_replica_holding_the_writes,
)

TUNED = dict(replica_check_seconds=0.1, max_replica_lag_seconds=1.0)


@pytest.fixture
def app(migrated_db, redis_url, make_app):
    env = stage_env(4, database=migrated_db.primary_url, replicas=migrated_db.replica_urls,
                    redis_url=redis_url)
    return make_app(config_for(env, **TUNED))


def test_second_read_is_a_cache_hit_with_no_database_query(app):
    reader = app.test_client()
    signup(reader)
    first = reader.get("/api/timeline")
    assert first.headers["X-Chirp-Cache"] == "miss" and first.headers["X-Chirp-DB"] != "none"
    before = db_query_count()
    second = reader.get("/api/timeline")
    assert second.headers["X-Chirp-Cache"] == "hit" and second.headers["X-Chirp-DB"] == "none"
    assert db_query_count() == before
    assert second.get_json() == first.get_json()


def test_own_post_is_never_stale(app):
    client = app.test_client()
    name = signup(client)
    post(client, "first")
    assert bodies(client.get("/api/timeline")) == ["first"]
    # A first page read moments after a write trusts that author's generation only once it is
    # older than what the page's snapshot surely holds: repaired once, then a hit.
    assert bodies(client.get("/api/timeline")) == ["first"]
    assert client.get("/api/timeline").headers["X-Chirp-Cache"] == "hit"
    post(client, "second")
    assert bodies(client.get("/api/timeline")) == ["second", "first"]
    assert bodies(client.get(f"/api/users/{name}")) == ["second", "first"]
    assert client.get(f"/api/users/{name}").get_json()["user"]["posts"] == 2
    assert bodies(app.test_client().get("/api/public"))[:2] == ["second", "first"]


def test_followers_see_new_posts_and_follows_invalidate(app):
    author, reader = app.test_client(), app.test_client()
    author_name = signup(author)
    signup(reader)
    post(author, "before follow")
    assert bodies(reader.get("/api/timeline")) == []
    follow(reader, author_name)
    assert bodies(reader.get("/api/timeline")) == ["before follow"]
    reader.get("/api/timeline")
    post(author, "after follow")
    assert bodies(reader.get("/api/timeline")) == ["after follow", "before follow"]
    reader.delete(f"/api/users/{author_name}/follow")
    assert bodies(reader.get("/api/timeline")) == []


def test_cache_misses_are_filled_from_replicas(app):
    writer = app.test_client()
    name = signup(writer)
    post(writer, "hello")
    wait_for_a_replica_holding_the_writes(app)  # so the cache fill may use a replica
    response = app.test_client().get(f"/api/users/{name}")
    assert response.headers["X-Chirp-Cache"] == "miss"
    assert response.headers["X-Chirp-DB"].startswith("replica-")


def test_hot_key_stampede_reaches_the_database_once(migrated_db, redis_url, make_app):
    env = stage_env(4, database=migrated_db.primary_url, replicas=migrated_db.replica_urls,
                    redis_url=redis_url)
    # Waiters give up after stampede_wait_seconds; generous here so a loaded CI box cannot turn
    # a slow fill into a (legitimate) second query.
    app = make_app(config_for(env, stampede_wait_seconds=15.0, **TUNED))
    author = app.test_client()
    name = signup(author)
    post(author, "going viral")
    wait_for_a_replica_holding_the_writes(app)
    threads_n = 16
    barrier = threading.Barrier(threads_n)
    statuses = []

    def read():
        client = app.test_client()
        barrier.wait()
        statuses.append(client.get(f"/api/users/{name}").status_code)

    before = db_query_count()
    threads = [threading.Thread(target=read) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * threads_n
    # user lookup (+1 if the replica had not replayed the sign-up yet) + profile + recent posts:
    # 3-4 queries in all, not 3 per reader
    assert db_query_count() - before <= 4, db_query_count() - before


def test_sessions_live_in_redis_so_any_pod_serves_any_user(migrated_db, redis_url, make_app):
    env = stage_env(4, database=migrated_db.primary_url, redis_url=redis_url)
    pod_a, pod_b = make_app(config_for(env)), make_app(config_for(env))
    client = pod_a.test_client()
    name = signup(client)
    other = pod_b.test_client()
    other.set_cookie("chirp_session", client.get_cookie("chirp_session").value)
    assert other.get("/api/me").get_json()["user"]["username"] == name


def test_redis_killed_mid_test_the_app_serves_from_the_database(migrated_db, own_redis, make_app):
    env = stage_env(4, database=migrated_db.primary_url, redis_url=own_redis.url())
    app = make_app(config_for(env, **TUNED))
    client = app.test_client()
    name = signup(client)
    post(client, "survives redis")
    assert client.get("/api/timeline").status_code == 200

    own_redis.kill()
    public = app.test_client().get("/api/public")
    assert public.status_code == 200 and "survives redis" in bodies(public)
    assert public.headers["X-Chirp-Cache"] == "down" and public.headers["X-Chirp-DB"] == "primary"
    user_page = app.test_client().get(f"/api/users/{name}")
    assert user_page.status_code == 200 and bodies(user_page) == ["survives redis"]
    # Sessions were in Redis: the user reads as logged out (401), never a 5xx.
    assert client.get("/api/timeline").status_code == 401
    assert client.post("/api/posts", json={"body": "x"}).status_code == 401
    login = client.post("/api/login", json={"username": name, "password": "correct horse"})
    assert login.status_code == 503 and "session store" in login.get_json()["error"]
    assert login.headers["Retry-After"]
    assert app.test_client().get("/").status_code == 200

    own_redis.start()
    cache = app.extensions["chirp"].cache
    wait_until(cache.available, what="the cache's down-backoff to end")
    login = client.post("/api/login", json={"username": name, "password": "correct horse"})
    assert login.status_code == 200
    assert bodies(client.get("/api/timeline")) == ["survives redis"]
    assert client.get("/api/timeline").headers["X-Chirp-Cache"] == "hit"


# --- the cached home page (a checked entry) ---------------------------------------------------
def cache_round_trips() -> float:
    return sum(sample.value for metric in REDIS_ROUND_TRIPS.collect()
               for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels["client"] == "cache")


def test_a_cached_timeline_page_costs_one_round_trip_and_no_query(app):
    reader, author = app.test_client(), app.test_client()
    signup(reader)
    author_name = signup(author)
    follow(reader, author_name)
    post(author, "hello")
    queries, trips = db_query_count(), cache_round_trips()
    first = reader.get("/api/timeline")
    assert first.headers["X-Chirp-Timeline"] == "database (first page)"
    # whom they follow and the page in one statement; Redis: the check (whom they follow read
    # along), the fill's lock, then whom they follow and the page stored together
    assert (db_query_count() - queries, cache_round_trips() - trips) == (1, 3)
    reader.get("/api/timeline")  # the author wrote moments before the first page: repaired once
    queries, trips = db_query_count(), cache_round_trips()
    second = reader.get("/api/timeline")
    assert second.headers["X-Chirp-Timeline"] == "database (cached page)"
    assert second.headers["X-Chirp-Cache"] == "hit" and second.headers["X-Chirp-DB"] == "none"
    assert (db_query_count() - queries, cache_round_trips() - trips) == (0, 1)
    assert second.get_json() == first.get_json()


def test_a_post_committed_after_a_first_page_was_read_is_never_served_stale(app, monkeypatch):
    reader, author = app.test_client(), app.test_client()
    signup(reader)
    follow(reader, signup(author))
    post(author, "seen")
    author_id = int(author.get("/api/me").get_json()["user"]["id"])  # ids travel as strings
    svc = app.extensions["chirp"]
    first_home_page = queries.first_home_page

    def then_a_post(db, *args):  # the page's generations are read after its snapshot
        found = first_home_page(db, *args)
        create_post(svc, {"id": author_id}, "committed after the snapshot")
        return found

    monkeypatch.setattr(queries, "first_home_page", then_a_post)
    first = reader.get("/api/timeline")
    assert first.headers["X-Chirp-Timeline"] == "database (first page)"
    assert bodies(first) == ["seen"]
    monkeypatch.undo()
    again = reader.get("/api/timeline")
    assert again.headers["X-Chirp-Timeline"] == "database (cached page, repaired)"
    assert bodies(again) == ["committed after the snapshot", "seen"]


def test_a_followee_post_repairs_the_cached_page_from_that_author_alone(app):
    reader, quiet, chatty = app.test_client(), app.test_client(), app.test_client()
    signup(reader)
    for client, body in ((quiet, "quiet one"), (chatty, "chatty one")):
        follow(reader, signup(client))
        post(client, body)
    assert bodies(reader.get("/api/timeline")) == ["chatty one", "quiet one"]
    post(chatty, "chatty two")
    queries = db_query_count()
    repaired = reader.get("/api/timeline")
    assert repaired.headers["X-Chirp-Timeline"] == "database (cached page, repaired)"
    assert bodies(repaired) == ["chatty two", "chatty one", "quiet one"]
    assert db_query_count() - queries == 1  # the chatty author's list, nobody else's
    assert reader.get("/api/timeline").headers["X-Chirp-Timeline"] == "database (cached page)"


def test_a_second_follower_repairs_from_the_cached_list_in_two_round_trips(app):
    first, second, author = app.test_client(), app.test_client(), app.test_client()
    author_name = signup(author)
    for reader in (first, second):
        signup(reader)
        follow(reader, author_name)
    post(author, "one")
    for reader in (first, second):
        reader.get("/api/timeline")
        reader.get("/api/timeline")  # settled: a cached page
    post(author, "two")
    assert bodies(first.get("/api/timeline")) == ["two", "one"]  # refills the author's list
    queries, trips = db_query_count(), cache_round_trips()
    repaired = second.get("/api/timeline")
    assert repaired.headers["X-Chirp-Timeline"] == "database (cached page, repaired)"
    assert bodies(repaired) == ["two", "one"]
    # the check brings the author's list along; then the page is stored
    assert (db_query_count() - queries, cache_round_trips() - trips) == (0, 2)


def test_a_page_deeper_than_the_cached_lists_is_cached_from_the_database(migrated_db, redis_url,
                                                                         make_app):
    env = stage_env(4, database=migrated_db.primary_url, redis_url=redis_url)
    app = make_app(config_for(env, recent_posts_per_author=2, **TUNED))
    reader, author = app.test_client(), app.test_client()
    signup(reader)
    follow(reader, signup(author))
    for n in range(4):
        post(author, f"post {n}")
    first = reader.get("/api/timeline?limit=3")
    assert first.headers["X-Chirp-Timeline"] == "database (first page)"
    assert bodies(first) == ["post 3", "post 2", "post 1"]
    reader.get("/api/timeline?limit=3")  # the author wrote moments before the first page
    again = reader.get("/api/timeline?limit=3")
    assert again.headers["X-Chirp-Timeline"] == "database (cached page)"
    post(author, "post 4")  # the author's list (2 posts) cannot repair a page of 3: rebuilt
    rebuilt = reader.get("/api/timeline?limit=3")
    assert rebuilt.headers["X-Chirp-Timeline"] == "database (database page, cached)"
    assert bodies(rebuilt) == ["post 4", "post 3", "post 2"]
    assert reader.get("/api/timeline?limit=3").headers["X-Chirp-Timeline"] == (
        "database (cached page)")


def test_timeline_stampede_on_a_cold_page_reaches_the_database_once_per_part(migrated_db,
                                                                              redis_url, make_app):
    env = stage_env(4, database=migrated_db.primary_url, redis_url=redis_url)
    app = make_app(config_for(env, stampede_wait_seconds=15.0, **TUNED))
    reader, author = app.test_client(), app.test_client()
    signup(reader)
    follow(reader, signup(author))
    post(author, "everyone reads this")
    cookie = reader.get_cookie("chirp_session").value
    threads_n = 12
    barrier = threading.Barrier(threads_n)
    pages = []

    def read():  # the same user in many tabs, nothing of their timeline cached yet
        client = app.test_client()
        client.set_cookie("chirp_session", cookie)
        barrier.wait()
        pages.append(bodies(client.get("/api/timeline")))

    before = db_query_count()
    threads = [threading.Thread(target=read) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pages == [["everyone reads this"]] * threads_n
    # whom they follow and the page (1, the lock's winner) + the waiters' rebuild from the authors'
    # lists (1; 2 if two fillers split the keys between them)
    assert db_query_count() - before <= 3, db_query_count() - before


def test_redis_unreachable_the_timeline_comes_from_the_database(migrated_db, make_app):
    writer_app = make_app(config_for(stage_env(2, database=migrated_db.primary_url)))
    reader, author = writer_app.test_client(), writer_app.test_client()
    signup(reader)
    follow(reader, signup(author))
    post(author, "no cache needed")
    reader_id = reader.get("/api/me").get_json()["user"]["id"]
    nobody_listens = f"redis://127.0.0.1:{processes.free_port()}/0"
    app = make_app(config_for(stage_env(4, database=migrated_db.primary_url,
                                        redis_url=nobody_listens)))
    with traced() as trace:
        page = reads.home_timeline(app.extensions["chirp"], int(reader_id), None, 20)
    assert [p["body"] for p in page] == ["no cache needed"]
    assert trace.cache_results == ["down"] and trace.timeline_source == "database"
