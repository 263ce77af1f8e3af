"""Reads and the worker follow a data move's routing record (docs/moves.md), against real
Postgres and Redis: a retired database still answers reads, so the app must ask it where its rows
went. The move itself is `chirp move` (test_online_moves*.py); here the routing records are set
as a cutover leaves them, around rows written on the new owner only (what the old one gets late
through the undo streams, or never after `complete`)."""

import time

import psycopg
import pytest
import redis

from chirp import accounts, reads, writes
from chirp.db.migrate import migrate
from chirp.db.pools import ROUTING_CHECK_TIMEOUT
from chirp.fanout import timeline_key
from chirp.services import build_services
from chirp.shards import Shard
from chirp.tasks import deliver_post, gather_timeline
from tests.services.conftest import config_for, stage_env

PASSWORD = "correct horse"


def set_routing(url: str, state: str, epoch: int, shard_urls=()) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE chirp_routing SET state = %s, epoch = %s, shard_urls = %s",
                     (state, epoch, list(shard_urls)))


@pytest.fixture
def closing():
    """Services built by the test, closed after it."""
    made = []
    yield made
    for services in made:
        services.close()


def services_on(closing, env, **tunables):
    services = build_services(config_for(env, **tunables))
    closing.append(services)
    return services


def stage_5(shards, redis_url) -> dict:
    return stage_env(5, shards=shards, redis_url=redis_url,
                     broker_url=redis_url.replace("/0", "/1"))


def test_the_worker_reads_a_follow_made_after_the_cutover_from_the_new_owner(
        separate_databases, redis_url, closing):
    sources, (target,) = separate_databases(2), separate_databases(1)
    for url in [*sources, target]:
        migrate(url)
    worker = services_on(closing, stage_5(sources, redis_url))
    # A task before the move: the worker has checked the routing record just now.
    assert gather_timeline(worker, 1 << 22, time.time()) == []

    # The cutover (merge 2 -> 1); then, on the new owner, a follow the old shards never saw.
    for url in sources:
        set_routing(url, "retired", 1, [target])
    app = services_on(closing, stage_5([target], redis_url))
    alice = accounts.sign_up(app, "alice", PASSWORD)
    bob = accounts.sign_up(app, "bob", PASSWORD)
    earlier = writes.create_post(app, bob, "before alice followed")
    assert writes.set_following(app, alice, "bob", True)
    sent_at = time.time()  # when the web pod queued alice's rebuild

    assert gather_timeline(worker, alice["id"], sent_at) == [earlier["id"]]
    assert worker.shard_map.current().shards == (Shard(0, target),)
    later = writes.create_post(app, bob, "after alice followed")
    deliver_post(worker, later["id"], time.time())  # alice follows bob on the new owner only
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zscore(timeline_key(alice["id"]), later["id"]) is not None
    finally:
        client.close()


def test_reads_follow_a_retired_primary_and_back_after_a_reverse(separate_databases, closing):
    (source,), (target,) = separate_databases(1), separate_databases(1)
    for url in (source, target):
        migrate(url)
    pod = services_on(closing, stage_env(2, database=source), routing_check_seconds=0.3)
    assert accounts.find_user(pod, "carol") is None  # checked the routing record: live

    set_routing(source, "retired", 1, [target])  # the cutover (copy 1 -> 1)
    app = services_on(closing, stage_env(2, database=target))
    carol = accounts.sign_up(app, "carol", PASSWORD)
    writes.create_post(app, carol, "on the new primary only")

    # A reader who wrote since the last check must see everything: the pod asks again now.
    assert accounts.find_user(pod, "carol", last_write_at=time.time())["id"] == carol["id"]
    assert pod.shard_map.current().epoch == 1
    assert [p["body"] for p in reads.user_posts(pod, carol["id"], None, 10)] == [
        "on the new primary only"]

    # Reversed: the old primary is live again at a newer epoch; a read that accepts staleness
    # follows within routing_check_seconds.
    set_routing(target, "retired", 2, [source])
    set_routing(source, "live", 2, [source])
    time.sleep(0.3 + 0.1)
    assert reads.public_posts(pod, None, 10) == []
    assert pod.shard_map.current().epoch == 2
    assert pod.shard_map.current().shards[0].primary_url == source


def test_a_read_that_accepts_staleness_checks_again_only_after_the_bound(separate_databases,
                                                                          closing):
    (source,), (target,) = separate_databases(1), separate_databases(1)
    for url in (source, target):
        migrate(url)
    pod = services_on(closing, stage_env(2, database=source), routing_check_seconds=60)
    pod.dbs.layout()  # checked: live
    set_routing(source, "retired", 1, [target])
    assert pod.dbs.layout().epoch == 0  # within the bound: no new check
    assert pod.dbs.layout(last_write_at=time.time()).epoch == 1  # a writer's read checks


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_primary_that_does_not_answer_costs_its_wait_once(separate_databases, redis_url,
                                                             closing):
    (live,), (target,) = separate_databases(1), separate_databases(1)
    for url in (live, target):
        migrate(url)
    dead = "postgresql://chirp@127.0.0.1:9/chirp"  # nothing listens there
    pod = services_on(closing, stage_5([dead, live], redis_url))
    layout, waited = timed(lambda: pod.dbs.layout(time.time()))
    assert layout.epoch == 0 and waited >= ROUTING_CHECK_TIMEOUT  # asked the next primary
    set_routing(live, "retired", 1, [target])
    layout, waited = timed(lambda: pod.dbs.layout(time.time()))
    assert layout.shards == (Shard(0, target),) and waited < ROUTING_CHECK_TIMEOUT / 2

    alone = services_on(closing, stage_env(2, database=dead), routing_check_seconds=60)
    assert timed(lambda: alone.dbs.layout(time.time()))[1] >= ROUTING_CHECK_TIMEOUT
    # None answered: reads go on without asking again for routing_check_seconds.
    assert timed(lambda: alone.dbs.layout(time.time()))[1] < ROUTING_CHECK_TIMEOUT / 2
