"""Configuration from environment variables (docs/contracts.md), validated once at start, and
the operator's architecture document, which may change while the process runs.

load_config() takes a mapping, returns a frozen Config or raises ConfigError naming the bad
variable; it reads nothing but the mapping and, when CHIRP_ARCHITECTURE_FILE names one, that file.
Tunables that are not part of the contract (windows, TTLs) are Config fields with defaults; tests
and benches override them with dataclasses.replace().

The app keeps no table of stages: what a stage runs, what it is called and which stage it is are
the operator's, in the architecture document (CHIRP_ARCHITECTURE_FILE, or CHIRP_ARCHITECTURE;
CHIRP_STAGE without a document, for local runs). The Config fixes what a process is wired to at
start (databases, Redis, session store: stage 3 to 4 restarts the pods anyway); LiveArchitecture
follows the document afterwards, so the stage a pod reports and whether it reads from replicas
change in place between stages 2 and 3, without a restart that would lose the sessions it holds.

Unknown CHIRP_* variables are ignored, not refused: Kubernetes injects service-link variables such
as CHIRP_SERVICE_HOST or CHIRP_REDIS_PORT into every pod of a namespace holding Services named
chirp-*, and refusing them would stop every pod. Those that are not service links are listed in
Config.ignored_variables so the commands can warn about a likely typo.
"""

import json
import logging
import os
import re
import socket
import threading
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from limits import parse_many

SESSION_BACKENDS = ("process", "redis")
# Rate limits (Flask-Limiter notation, "N/minute;M/hour"), each overridable by CHIRP_<FIELD>: a
# load generator signing up many users from one address raises CHIRP_SIGNUP_LIMIT_PER_IP.
RATE_LIMIT_FIELDS = ("login_limit_per_username", "login_limit_per_ip", "signup_limit_per_ip")
# Every variable the app reads (docs/contracts.md). CHIRP_WEB_THREADS is read by gunicorn_conf.py.
KNOWN_VARIABLES = frozenset({
    "CHIRP_STAGE", "CHIRP_SECRET_KEY", "CHIRP_DATABASE_URL", "CHIRP_REPLICA_URLS",
    "CHIRP_SHARD_URLS", "CHIRP_SHARD_REPLICA_URLS", "CHIRP_REDIS_URL", "CHIRP_BROKER_URL",
    "CHIRP_SESSION_BACKEND", "CHIRP_ARCHITECTURE", "CHIRP_ARCHITECTURE_FILE", "CHIRP_WEB_THREADS",
    *(f"CHIRP_{name.upper()}" for name in RATE_LIMIT_FIELDS),
})
# Variables earlier versions read, with what replaced them (shown in the warning).
RETIRED_VARIABLES = {
    "CHIRP_TOPOLOGY": "replaced by CHIRP_ARCHITECTURE",
    "CHIRP_DRAIN_SECONDS": "draining is the pod's preStop sleep and gunicorn's graceful timeout",
}
# Kubernetes service links: <SERVICE>_SERVICE_HOST, <SERVICE>_SERVICE_PORT[_<name>], <SERVICE>_PORT,
# <SERVICE>_PORT_<port>_<proto>[_PROTO|_PORT|_ADDR].
_SERVICE_LINK = re.compile(
    r"_SERVICE_(HOST|PORT)(_\w+)?$|_PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?$")
STAGES = (1, 2, 3, 4, 5)

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration problem; str() names the variable and what is wrong with it."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Config:
    # The stage at start: it decides what the process is wired to (which URLs it needs, cache,
    # shards). What the pod reports and whether it reads from replicas follow the document live
    # (LiveArchitecture), which may name another stage later.
    stage: int
    secret_key: str
    database_url: str | None = None
    replica_urls: tuple[str, ...] = ()
    shard_urls: tuple[str, ...] = ()
    shard_replica_urls: tuple[str, ...] = ()
    redis_url: str | None = None
    broker_url: str | None = None
    session_backend: str = "process"
    architecture: dict | None = None  # the operator's picture of this instance at start
    architecture_file: str | None = None  # where to re-read it from (CHIRP_ARCHITECTURE_FILE)
    pod_name: str = field(default_factory=socket.gethostname)
    node_name: str = ""
    ignored_variables: tuple[str, ...] = ()  # unknown CHIRP_* variables (not service links)
    # Tunables (not environment variables).
    max_replica_lag_seconds: float = 5.0  # a replica further behind than this is skipped
    replica_check_seconds: float = 0.5  # how often a replica's health, lag, position are measured
    # A read that accepts staleness (no write of its own to see) re-reads the routing record of
    # its layout at most this often, so it follows a data move within this much (docs/moves.md).
    routing_check_seconds: float = 1.0
    cache_ttl_seconds: int = 300
    recent_posts_per_author: int = 20  # per-author list cached at stage 4 (one page: cheap)
    fanout_timeline_cap: int = 800  # fanned-out timeline length kept per user at stage 5
    timeline_ready_ttl_seconds: int = 600  # a fanned-out timeline is trusted this long
    stampede_wait_seconds: float = 2.0
    db_pool_max: int = 10
    password_method: str = "scrypt"  # werkzeug's default; tests and benches use a cheaper one
    # Failed logins only count towards the login limits; every sign-up counts (docs/security.md).
    login_limit_per_username: str = "10/minute"  # password guessing against one account
    login_limit_per_ip: str = "60/minute"  # password spraying from one client address
    signup_limit_per_ip: str = "100/minute;1000/hour"  # mass account creation
    # HTTP proxies in front of the web process, whose X-Forwarded-For entries it trusts for the
    # client's address; None: as many as the architecture document's request path has (the
    # stage-5 edge), none without a document (chirp.web.security.proxies_in_front).
    proxies_in_front: int | None = None

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
    architecture_file = env.get("CHIRP_ARCHITECTURE_FILE", "").strip() or None
    architecture = _architecture(env, architecture_file)
    stage = _stage(env, architecture)
    at_stage = f"at stage {stage}"
    secret = _required(env, "CHIRP_SECRET_KEY", "(the Flask secret key)")
    if len(secret) < 16:
        raise ConfigError("CHIRP_SECRET_KEY", "must be at least 16 characters")

    database_url, replicas, shards, shard_replicas = None, (), (), ()
    if stage <= 4:
        database_url = _url("CHIRP_DATABASE_URL", _required(env, "CHIRP_DATABASE_URL", at_stage))
    if stage in (2, 3, 4):
        # Given from stage 2 on, so 2 -> 3 needs no restart; read from at stages 3-4 only
        # (Architecture.reads_from_replicas). None: reads go to the primary.
        replicas = _url_list(env, "CHIRP_REPLICA_URLS")
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
        raise ConfigError("CHIRP_SESSION_BACKEND",
                          f"must be process or redis, got {session_backend!r}")
    if session_backend == "redis" and redis_url is None:
        raise ConfigError("CHIRP_SESSION_BACKEND", "is redis but CHIRP_REDIS_URL is not set")

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
        architecture=architecture,
        architecture_file=architecture_file,
        pod_name=env.get("POD_NAME", "").strip() or socket.gethostname(),
        node_name=env.get("NODE_NAME", "").strip(),
        ignored_variables=ignored_variables(env),
        **_rate_limits(env),
    )


def _rate_limits(env) -> dict:
    """CHIRP_LOGIN_LIMIT_PER_USERNAME etc.: optional overrides, checked here so a typo stops the
    pod at start rather than failing every request."""
    found = {}
    for name in RATE_LIMIT_FIELDS:
        variable = f"CHIRP_{name.upper()}"
        raw = env.get(variable, "").strip()
        if raw:
            try:
                parse_many(raw)
            except ValueError:
                raise ConfigError(variable, f"{raw!r} is not a rate limit like 10/minute or "
                                            "10/minute;100/hour") from None
            found[name] = raw
    return found


def _stage(env, architecture: dict | None) -> int:
    """The document's stage; CHIRP_STAGE where there is no document (or it names no stage)."""
    raw = env.get("CHIRP_STAGE", "").strip()
    from_document = (architecture or {}).get("stage")
    if not raw and from_document is not None:
        return from_document
    if raw not in {str(n) for n in STAGES}:
        raise ConfigError("CHIRP_STAGE", f"must be 1..5 (or give the architecture document's "
                                         f"stage), got {raw!r}")
    if from_document is not None and from_document != int(raw):
        raise ConfigError("CHIRP_STAGE", f"is {raw} but the architecture document says stage "
                                         f"{from_document} (set one of them)")
    return int(raw)


def _architecture(env, path: str | None) -> dict | None:
    """The architecture document at start: from the file CHIRP_ARCHITECTURE_FILE names, else from
    CHIRP_ARCHITECTURE, else none."""
    if path is None:
        return parse_architecture(env.get("CHIRP_ARCHITECTURE", ""), "CHIRP_ARCHITECTURE")
    if env.get("CHIRP_ARCHITECTURE", "").strip():
        raise ConfigError("CHIRP_ARCHITECTURE_FILE", "is set and so is CHIRP_ARCHITECTURE: set one")
    try:
        return read_architecture(path)
    except OSError as error:
        raise ConfigError("CHIRP_ARCHITECTURE_FILE",
                          f"cannot read {path}: {error.strerror or error}") from None


def read_architecture(path: str) -> dict:
    """The document in the file `path` (ConfigError naming CHIRP_ARCHITECTURE_FILE if it is not
    one; OSError if it cannot be read)."""
    with open(path, encoding="utf-8") as file:
        raw = file.read()
    document = parse_architecture(raw, "CHIRP_ARCHITECTURE_FILE")
    if document is None:
        raise ConfigError("CHIRP_ARCHITECTURE_FILE", f"{path} is empty")
    return document


def parse_architecture(raw: str, variable: str) -> dict | None:
    """An architecture document: a JSON object; the fields the app reads must have the shapes of
    docs/contracts.md (other fields are kept and ignored). None for an empty string."""
    if not raw.strip():
        return None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(variable, f"is not valid JSON ({error.msg})") from None
    if not isinstance(document, dict):
        raise ConfigError(variable, f"must be a JSON object, got {type(document).__name__}")
    stage = document.get("stage")
    if stage is not None and (type(stage) is not int or stage not in STAGES):
        raise ConfigError(variable, '"stage" must be a number 1..5')
    if "stageName" in document and not isinstance(document["stageName"], str):
        raise ConfigError(variable, '"stageName" must be a string')
    components = document.get("components", [])
    if not isinstance(components, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) for c in components):
        raise ConfigError(variable, '"components" must be a list of objects with a "name"')
    spofs = document.get("spofs", [])
    if not isinstance(spofs, list) or not all(isinstance(s, str) for s in spofs):
        raise ConfigError(variable, '"spofs" must be a list of component names')
    return document


@dataclass(frozen=True)
class Architecture:
    """The instance as the operator describes it at one moment (just the stage without a
    document): what a response reports and how reads are routed."""

    stage: int
    document: dict | None = None

    @property
    def stage_name(self) -> str | None:
        """The stage's name as the operator calls it; None when no architecture was given."""
        if self.document is None:
            return None
        return self.document.get("stageName")

    @property
    def stage_title(self) -> str:
        """"stage 3 (load-balanced)", or just "stage 3" when the operator named no stage."""
        name = self.stage_name
        return f"stage {self.stage} ({name})" if name else f"stage {self.stage}"

    @property
    def reads_from_replicas(self) -> bool:
        """Stages 3-5 read from the configured replicas; stages 1-2 from the primary only (a
        stage-2 pod is given the replicas' URL already, so stage 3 needs no restart)."""
        return self.stage >= 3


class LiveArchitecture:
    """The architecture document as it is now, for one process (built with its services).

    With CHIRP_ARCHITECTURE_FILE (a mounted ConfigMap, which the kubelet updates in place by
    swapping a symlink) each call checks the file's identity (one stat) and re-reads it when it
    changed; a document that does not parse is logged and the last good one kept. Without a file
    the document of the start (CHIRP_ARCHITECTURE) stays. A document that names no stage keeps
    the stage of the start.
    """

    def __init__(self, config: Config):
        self._path = config.architecture_file
        self._start_stage = config.stage
        self._current = Architecture(config.stage, config.architecture)
        self._seen: tuple | None = None  # identity of the file version last read (None: not yet)
        self._lock = threading.Lock()

    def current(self) -> Architecture:
        if self._path is None:
            return self._current
        try:
            identity = _identity(os.stat(self._path))
        except OSError:
            return self._current  # between the kubelet's swaps, or gone: keep what we have
        if identity != self._seen:
            with self._lock:
                if identity != self._seen:
                    self._reload(identity)
        return self._current

    def _reload(self, identity: tuple) -> None:
        try:
            document = read_architecture(self._path)
        except (OSError, ConfigError) as error:
            log.warning("keeping the architecture document read before: %s", error)
        else:
            stage = document.get("stage", self._start_stage)
            if stage != self._current.stage:
                log.info("architecture document: stage %s -> %s", self._current.stage, stage)
            self._current = Architecture(stage, document)
        self._seen = identity  # a bad version is not re-read on every request


def _identity(stat: os.stat_result) -> tuple:
    """What changes when a file is replaced or rewritten."""
    return stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_size


def ignored_variables(env) -> tuple[str, ...]:
    """CHIRP_* variables the app does not read, leaving out Kubernetes service links."""
    return tuple(sorted(name for name in env
                        if name.startswith("CHIRP_") and name not in KNOWN_VARIABLES
                        and not _SERVICE_LINK.search(name)))


def ignored_variables_warning(config: Config) -> str | None:
    """One line naming the variables that were set but are not read (None: nothing to say)."""
    if not config.ignored_variables:
        return None
    described = [f"{name} ({RETIRED_VARIABLES[name]})" if name in RETIRED_VARIABLES else name
                 for name in config.ignored_variables]
    return f"ignoring unknown variables: {', '.join(described)} (see docs/contracts.md)"
