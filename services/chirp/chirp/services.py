"""Everything a request or a task needs, built once from the Config (web process or worker)."""

import logging
from dataclasses import dataclass

from chirp.cache import Cache, make_redis
from chirp.config import Config
from chirp.db.pools import Databases
from chirp.fanout import FanoutTimelines
from chirp.topology import Topology

log = logging.getLogger(__name__)


class TaskQueue:
    """Sends Celery tasks; a broker outage loses the message, never the request (logged)."""

    def __init__(self, celery_app):
        self.celery_app = celery_app

    def send(self, name: str, *args) -> bool:
        try:
            self.celery_app.send_task(name, args=list(args), retry=False)
            return True
        except Exception as error:  # kombu/redis errors vary by transport
            log.warning("could not enqueue %s%r: %s", name, args, error)
            return False


@dataclass
class Services:
    config: Config
    topology: Topology
    dbs: Databases
    redis: object | None = None
    cache: Cache | None = None
    timelines: FanoutTimelines | None = None
    queue: TaskQueue | None = None

    def cache_ping(self) -> bool:
        if self.redis is None:
            return False
        if self.cache is not None:
            return bool(self.cache.attempt(lambda r: r.ping(), default=False))
        try:
            return bool(self.redis.ping())
        except Exception:
            return False

    def close(self) -> None:
        self.dbs.close()
        if self.redis is not None:
            self.redis.close()


def build_services(config: Config) -> Services:
    topology = Topology(config)
    services = Services(config=config, topology=topology, dbs=Databases(config, topology))
    if config.redis_url:
        services.redis = make_redis(config.redis_url)
    if config.cache_enabled:
        services.cache = Cache(services.redis, config.cache_ttl_seconds, config.stampede_wait_seconds)
    if config.sharded:
        from chirp.tasks import celery_for

        services.timelines = FanoutTimelines(config.fanout_timeline_cap,
                                             config.timeline_ready_ttl_seconds)
        services.queue = TaskQueue(celery_for(config))
    return services
