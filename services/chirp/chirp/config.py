"""Configuration from environment variables only (docs/contracts.md), validated once at start.

load_config() is pure: it takes a mapping, returns a frozen Config or raises ConfigError naming the
bad variable. Tunables that are not part of the contract (windows, TTLs) are Config fields with
defaults; tests and benches override them with dataclasses.replace().
"""

import json
import socket
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

STAGE_NAMES = {1: "monolith", 2: "separate-db", 3: "load-balanced", 4: "cached", 5: "sharded"}
SESSION_BACKENDS = ("process", "redis")


class ConfigError(ValueError):
    """A configuration problem; str() names the variable and what is wrong with it."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Config:
    stage: int
    secret_key: str
    database_url: str | None = None
    replica_urls: tuple[str, ...] = ()
    shard_urls: tuple[str, ...] = ()
    shard_replica_urls: tuple[str, ...] = ()
    redis_url: str | None = None
    broker_url: str | None = None
    session_backend: str = "process"
    topology: dict | None = None
    pod_name: str = field(default_factory=socket.gethostname)
    node_name: str = ""
    drain_seconds: float = 5.0
    # Tunables (not environment variables).
    max_replica_lag_seconds: float = 5.0  # a replica further behind than this is skipped
    replica_check_seconds: float = 0.5  # how often a replica's health, lag and position are measured
    cache_ttl_seconds: int = 300
    recent_posts_per_author: int = 20  # per-author list cached at stage 4 (one page: cheap to decode)
    fanout_timeline_cap: int = 800  # fanned-out timeline length kept per user at stage 5
    timeline_ready_ttl_seconds: int = 600  # a fanned-out timeline is trusted this long, then rebuilt
    stampede_wait_seconds: float = 2.0
    db_pool_max: int = 10
    password_method: str = "scrypt"  # werkzeug's default; tests and benches use a cheaper one

    @property
    def stage_name(self) -> str:
        return STAGE_NAMES[self.stage]

    @property
    def sharded(self) -> bool:
        return self.stage == 5

    @property
    def cache_enabled(self) -> bool:
        return self.stage >= 4 and self.redis_url is not None

    def replace(self, **changes) -> "Config":
        return replace(self, **changes)


def _url(variable: str, value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ConfigError(variable, f"{value!r} is not a postgresql://user@host:port/db URL")
    if parts.password:
        raise ConfigError(variable, "must not carry a password (set PGPASSWORD instead)")
    return value


def _url_list(env, variable: str) -> tuple[str, ...]:
    raw = env.get(variable, "").strip()
    if not raw:
        return ()
    items = [item.strip() for item in raw.split(",")]
    if any(not item for item in items):
        raise ConfigError(variable, "has an empty entry (stray comma?)")
    return tuple(_url(variable, item) for item in items)


def _redis_url(variable: str, value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(variable, f"{value!r} is not a redis://host:port/db URL")
    return value.strip()


def _required(env, variable: str, why: str) -> str:
    value = env.get(variable, "").strip()
    if not value:
        raise ConfigError(variable, f"is required {why}")
    return value


def load_config(env) -> Config:
    raw_stage = env.get("CHIRP_STAGE", "").strip()
    if raw_stage not in {"1", "2", "3", "4", "5"}:
        raise ConfigError("CHIRP_STAGE", f"must be 1..5, got {raw_stage!r}")
    stage = int(raw_stage)
    at_stage = f"at stage {stage}"
    secret = _required(env, "CHIRP_SECRET_KEY", "(the Flask secret key)")
    if len(secret) < 16:
        raise ConfigError("CHIRP_SECRET_KEY", "must be at least 16 characters")

    database_url, replicas, shards, shard_replicas = None, (), (), ()
    if stage <= 4:
        database_url = _url("CHIRP_DATABASE_URL", _required(env, "CHIRP_DATABASE_URL", at_stage))
    if stage in (3, 4):
        replicas = _url_list(env, "CHIRP_REPLICA_URLS")  # none: reads go to the primary
    if stage == 5:
        _required(env, "CHIRP_SHARD_URLS", at_stage)
        shards = _url_list(env, "CHIRP_SHARD_URLS")
        shard_replicas = _url_list(env, "CHIRP_SHARD_REPLICA_URLS")
        if shard_replicas and len(shard_replicas) != len(shards):
            raise ConfigError(
                "CHIRP_SHARD_REPLICA_URLS",
                f"has {len(shard_replicas)} URLs for {len(shards)} shards (same order, one each)",
            )

    redis_url = broker_url = None
    if env.get("CHIRP_REDIS_URL", "").strip() or stage >= 4:
        redis_url = _redis_url("CHIRP_REDIS_URL", _required(env, "CHIRP_REDIS_URL", at_stage))
    if stage == 5:
        broker_url = _redis_url("CHIRP_BROKER_URL", _required(env, "CHIRP_BROKER_URL", at_stage))

    session_backend = env.get("CHIRP_SESSION_BACKEND", "").strip() or (
        "redis" if stage >= 4 else "process"
    )
    if session_backend not in SESSION_BACKENDS:
        raise ConfigError("CHIRP_SESSION_BACKEND", f"must be process or redis, got {session_backend!r}")
    if session_backend == "redis" and redis_url is None:
        raise ConfigError("CHIRP_SESSION_BACKEND", "is redis but CHIRP_REDIS_URL is not set")

    topology = None
    raw_topology = env.get("CHIRP_TOPOLOGY", "").strip()
    if raw_topology:
        try:
            topology = json.loads(raw_topology)
        except json.JSONDecodeError as error:
            raise ConfigError("CHIRP_TOPOLOGY", f"is not valid JSON ({error.msg})") from None
        if not isinstance(topology, dict):
            raise ConfigError("CHIRP_TOPOLOGY", "must be a JSON object")

    drain = env.get("CHIRP_DRAIN_SECONDS", "").strip()
    try:
        drain_seconds = float(drain) if drain else 5.0
    except ValueError:
        raise ConfigError("CHIRP_DRAIN_SECONDS", f"must be a number, got {drain!r}") from None
    if not 0 <= drain_seconds <= 300:
        raise ConfigError("CHIRP_DRAIN_SECONDS", "must be between 0 and 300")

    return Config(
        stage=stage,
        secret_key=secret,
        database_url=database_url,
        replica_urls=replicas,
        shard_urls=shards,
        shard_replica_urls=shard_replicas,
        redis_url=redis_url,
        broker_url=broker_url,
        session_backend=session_backend,
        topology=topology,
        pod_name=env.get("POD_NAME", "").strip() or socket.gethostname(),
        node_name=env.get("NODE_NAME", "").strip(),
        drain_seconds=drain_seconds,
    )
