"""Stage 5's Celery tasks (Redis broker): fan a post out to followers, rebuild a timeline.

Both are idempotent (sorted-set writes), so at-least-once delivery (acks_late, retries) is safe.

Each task carries when it was sent (after the write that asked for it was committed) and reads
as a writer who wrote then: from the databases that own the rows now, on a replica only if it is
known to hold every write up to then (see deliver_post).

No Celery app exists at import time: create_celery(config) builds one. The web process sends
tasks through it (TaskQueue); `chirp worker` runs it. The worker's Services are built when the
worker starts, from Celery's worker_init signal, and kept on the app (`app.chirp_services`); tasks
reach them through the app they are bound to. (worker_init, not worker_process_init: Celery sends
the latter only to prefork and solo pool processes, and the worker runs its tasks in threads of its
own process, `worker_pool = "threads"`.)
"""

import logging
import time

import redis
from celery import Celery, signals

from chirp.config import Config
from chirp.db import queries
from chirp.db.pools import DatabaseUnavailable
from chirp.metrics import FANOUT_DELIVERIES
from chirp.reads import posts_by_authors
from chirp.services import Services, build_services

log = logging.getLogger(__name__)

QUEUE = "chirp"
FANOUT_POST = "chirp.fanout_post"
REBUILD_TIMELINE = "chirp.rebuild_timeline"

SETTINGS = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "task_ignore_result": True,
    "task_default_queue": QUEUE,
    "worker_pool": "threads",
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    "broker_connection_timeout": 2,
    "broker_transport_options": {"socket_timeout": 2, "socket_connect_timeout": 1,
                                 "visibility_timeout": 300},
    "worker_hijack_root_logger": False,
}


class PostNotVisibleYet(Exception):
    pass


# --- what the tasks do (plain functions of the services: callable without Celery) ----------------
# The worker never writes to Postgres, so no refusal ever tells it that a data move retired its
# databases, and a retired database goes on answering reads (from rows the undo streams bring
# back late, and never again after the move's `complete`): neither waiting for an error nor a
# routing record cached for a fixed time would do. A follow acknowledged just after the cutover
# would queue a rebuild that reads the follower's followees from the retired copy before the
# follow got there. So every read below passes `sent_at` as its last write: svc.dbs.layout()
# re-reads the routing record unless a check made after the task was sent vouches for the layout
# (one query for all the tasks sent before it), and follows the move before the task reads.
def deliver_post(svc: Services, post_id: int, sent_at: float) -> int:
    """Write post_id into the timelines of its author and every follower; entries added (0 when
    every timeline already holds it: a repeated delivery writes nothing new)."""
    layout = svc.dbs.layout(sent_at)
    found = svc.dbs.read(layout.shard_for_id(post_id),  # a post id carries its author's bucket
                         lambda db: queries.posts_by_ids(db, [post_id]), last_write_at=sent_at)
    if not found:
        raise PostNotVisibleYet(f"post {post_id} is not committed (yet)")
    post = found[0]
    # Every follow acknowledged before the post was sent must count: a follower whose rebuild
    # ran before this post was committed gets it only from here.
    followers = svc.dbs.read_all_shards(lambda db: queries.follower_ids(db, post["author_id"]),
                                        last_write_at=sent_at)
    audience = {post["author_id"]} | {f for ids in followers.values() for f in ids}
    added = svc.timelines.deliver(svc.redis, post_id, sorted(audience))
    FANOUT_DELIVERIES.inc(added)
    return added


def gather_timeline(svc: Services, user_id: int, sent_at: float) -> list[int]:
    """The newest post ids of a user's home timeline, from the shards (for a rebuild)."""
    shard = svc.dbs.layout(sent_at).shard_for_id(user_id)
    followees = svc.dbs.read(shard, lambda db: queries.followee_ids(db, user_id),
                             last_write_at=sent_at)
    posts = posts_by_authors(svc, sorted(set(followees) | {user_id}), None,
                             svc.config.fanout_timeline_cap, sent_at)
    return [post["id"] for post in posts]


# --- the Celery side --------------------------------------------------------------------------
def worker_services(celery_app: Celery) -> Services:
    services = getattr(celery_app, "chirp_services", None)
    if services is None:
        raise RuntimeError("chirp tasks run in `chirp worker`: its services are built when the "
                           "worker starts (worker_init)")
    return services


def _sent_at(sent_at: float | None) -> float:
    """Messages queued by a pod from before tasks carried `sent_at` were sent before now."""
    return time.time() if sent_at is None else sent_at


def _fanout_post(task, post_id: int, sent_at: float | None = None) -> int:
    try:
        return deliver_post(worker_services(task.app), post_id, _sent_at(sent_at))
    except PostNotVisibleYet as error:
        raise task.retry(exc=error, countdown=0.2) from error
    except (DatabaseUnavailable, redis.RedisError) as error:
        raise task.retry(exc=error, countdown=1) from error


def _rebuild_timeline(task, user_id: int, sent_at: float | None = None) -> int:
    svc = worker_services(task.app)
    try:
        post_ids = gather_timeline(svc, user_id, _sent_at(sent_at))
        svc.timelines.rebuild(svc.redis, user_id, post_ids)
        return len(post_ids)
    except (DatabaseUnavailable, redis.RedisError) as error:
        raise task.retry(exc=error, countdown=1) from error


def create_celery(config: Config) -> Celery:
    """A Celery app for this config, with chirp's tasks; in a worker it builds its services."""
    app = Celery("chirp", broker=config.broker_url, set_as_current=False)
    app.conf.update(SETTINGS)
    app.chirp_services = None
    # shared=False: the tasks belong to this app only, not to every Celery app made later.
    app.task(name=FANOUT_POST, bind=True, max_retries=50, shared=False)(_fanout_post)
    app.task(name=REBUILD_TIMELINE, bind=True, max_retries=10, shared=False)(_rebuild_timeline)

    def build(sender, **_kwargs):
        if sender.app is app and app.chirp_services is None:
            app.chirp_services = build_services(config, celery_app=app)

    def close(sender, **_kwargs):
        if sender.app is app and app.chirp_services is not None:
            app.chirp_services.close()
            app.chirp_services = None

    app.chirp_signal_receivers = (build, close)  # Celery's signals hold their receivers weakly
    signals.worker_init.connect(build)
    signals.worker_shutdown.connect(close)
    return app


class TaskQueue:
    """Sends chirp's tasks; a broker outage loses the message, never the request (logged)."""

    def __init__(self, celery_app: Celery):
        self.celery_app = celery_app

    # Sent after the write they follow was committed: what the task reads must include it.
    def fanout_post(self, post_id: int) -> str | None:
        return self.send(FANOUT_POST, post_id, time.time())

    def rebuild_timeline(self, user_id: int) -> str | None:
        return self.send(REBUILD_TIMELINE, user_id, time.time())

    def send(self, name: str, *args) -> str | None:
        """The task's id, or None when it could not be sent."""
        try:
            return self.celery_app.send_task(name, args=list(args), retry=False).id
        except Exception as error:  # kombu/redis errors vary by transport
            log.warning("could not enqueue %s%r: %s", name, args, error)
            return None
