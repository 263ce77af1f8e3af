"""Stage 5's Celery tasks (Redis broker): fan a post out to followers, rebuild a timeline.

Both are idempotent (sorted-set writes), so at-least-once delivery (acks_late, retries) is safe.
The worker builds its Services from the same environment variables as the web.
"""

import os
import threading
import time

import redis
from celery import Celery

from chirp.config import Config, load_config
from chirp.db import queries
from chirp.db.pools import DatabaseUnavailable
from chirp.metrics import FANOUT_DELIVERIES

celery_app = Celery("chirp")
celery_app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    task_default_queue="chirp",
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=2,
    broker_transport_options={"socket_timeout": 2, "socket_connect_timeout": 1,
                              "visibility_timeout": 300},
    worker_hijack_root_logger=False,
)

_services = None
_services_lock = threading.Lock()


def celery_for(config: Config) -> Celery:
    celery_app.conf.broker_url = config.broker_url
    return celery_app


def worker_services():
    global _services
    with _services_lock:
        if _services is None:
            from chirp.services import build_services

            _services = build_services(load_config(os.environ))
        return _services


class PostNotVisibleYet(Exception):
    pass


def deliver_post(svc, post_id: int) -> int:
    """Write post_id into the timelines of its author and every follower; entries added."""
    shard = svc.topology.shard_for_user_id(post_id)  # a post id carries its author's bucket
    # Read on the primary: a task may run before a replica has the post.
    found = svc.dbs.read(shard, lambda db: queries.posts_by_ids(db, [post_id]),
                         last_write_at=float("inf"))
    if not found:
        raise PostNotVisibleYet(f"post {post_id} is not committed (yet)")
    post = found[0]
    followers = svc.dbs.read_all_shards(lambda db: queries.follower_ids(db, post["author_id"]))
    audience = {post["author_id"]} | {f for ids in followers.values() for f in ids}
    added = svc.timelines.deliver(svc.redis, post_id, sorted(audience))
    FANOUT_DELIVERIES.inc(added)
    return added


def gather_timeline(svc, user_id: int) -> list[int]:
    """The newest post ids of a user's home timeline, from the shards (for a rebuild)."""
    from chirp.reads import _posts_by_authors

    shard = svc.topology.shard_for_user_id(user_id)
    followees = svc.dbs.read(shard, lambda db: queries.followee_ids(db, user_id),
                             last_write_at=time.time())
    posts = _posts_by_authors(svc, sorted(set(followees) | {user_id}), None,
                              svc.config.fanout_timeline_cap, time.time())
    return [post["id"] for post in posts]


@celery_app.task(name="chirp.fanout_post", bind=True, max_retries=50)
def fanout_post(self, post_id: int) -> int:
    try:
        return deliver_post(worker_services(), post_id)
    except PostNotVisibleYet as error:
        raise self.retry(exc=error, countdown=0.2)
    except (DatabaseUnavailable, redis.RedisError) as error:
        raise self.retry(exc=error, countdown=1)


@celery_app.task(name="chirp.rebuild_timeline", bind=True, max_retries=10)
def rebuild_timeline(self, user_id: int) -> int:
    svc = worker_services()
    try:
        post_ids = gather_timeline(svc, user_id)
        svc.timelines.rebuild(svc.redis, user_id, post_ids)
        return len(post_ids)
    except (DatabaseUnavailable, redis.RedisError) as error:
        raise self.retry(exc=error, countdown=1)
