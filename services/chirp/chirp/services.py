"""Everything a request or a task needs, built once from the Config (web process or worker)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chirp.cache import SESSION_TIMEOUT_SECONDS, Cache, SessionConnection, make_redis
from chirp.config import Config, LiveArchitecture
from chirp.db.pools import Databases
from chirp.fanout import FanoutTimelines
from chirp.shards import ShardMap

if TYPE_CHECKING:  # Celery is only imported at stage 5
    from chirp.tasks import TaskQueue


@dataclass
class Services:
    config: Config
    architecture: LiveArchitecture  # the stage and document now (config.stage is the start's)
    shard_map: ShardMap
    dbs: Databases
    redis: object | None = None  # the cache's client (fails fast)
    session_redis: object | None = None  # the sessions' client (waits longer: see cache.py)
    cache: Cache | None = None
    timelines: FanoutTimelines | None = None
    queue: "TaskQueue | None" = None

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
        for client in (self.redis, self.session_redis):
            if client is not None:
                client.close()


def build_services(config: Config, celery_app=None) -> Services:
    """The services of one process. At stage 5 tasks go out through `celery_app` (the worker passes
    its own app); by default a new one is made from the config."""
    shard_map = ShardMap(config)
    architecture = LiveArchitecture(config)
    services = Services(config=config, architecture=architecture, shard_map=shard_map,
                        dbs=Databases(config, shard_map, architecture))
    if config.redis_url:
        services.redis = make_redis(config.redis_url)
        services.session_redis = make_redis(config.redis_url, SESSION_TIMEOUT_SECONDS,
                                            SessionConnection)
    if config.cache_enabled:
        services.cache = Cache(services.redis, config.cache_ttl_seconds,
                               config.stampede_wait_seconds)
    if config.sharded:
        from chirp.tasks import TaskQueue, create_celery  # Celery is only loaded at stage 5

        services.timelines = FanoutTimelines(config.fanout_timeline_cap,
                                             config.timeline_ready_ttl_seconds)
        services.queue = TaskQueue(celery_app or create_celery(config))
    return services
