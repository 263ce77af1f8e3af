"""The stage plans: what each stage runs by default, and how a ScaleStage spec resolves into a Plan.

Read the STAGES table to find stage N in one look. Everything else in the operator decides from a
resolved `Plan`, never from the raw spec, so defaults live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MONOLITH, SINGLE_PRIMARY, SHARDED = "monolith", "single-primary", "sharded"


@dataclass(frozen=True)
class Stage:
    """Defaults of one stage; a user's spec may override the counts within the CRD's bounds."""

    number: int
    name: str
    data_layout: str  # where the data lives: moving between layouts moves data (a migration)
    web_replicas: int
    read_replicas: int  # streaming replicas per primary (per shard at stage 5)
    shards: int  # 0: not sharded
    redis: bool
    workers: int
    edge: bool
    session_backend: str  # `process` or `redis` (docs/contracts.md)
    sticky_sessions: bool  # ClientIP affinity while sessions live in the web process
    spofs: tuple[str, ...]  # single points of failure the status lists ({shard}: one per shard)
    # What the architecture page says (one source: the architecture document carries it).
    breaks: str = ""  # what fails or hurts first at this stage
    next_fixes: str = ""  # what the next stage changes about it


STAGES: dict[int, Stage] = {
    s.number: s
    for s in (
        # the fields of Stage in order: number, name, data layout, web replicas, read replicas,
        # shards, redis, workers, edge, session backend, sticky sessions, SPOFs; then what the
        # architecture page says breaks at the stage and what the next stage fixes
        Stage(1, "monolith", MONOLITH, 1, 0, 0, False, 0, False, "process", False, ("monolith",),
              breaks="One pod runs the app and its database: a restart or a crash is a full "
                     "outage, the sessions in the process go with it, and both programs share "
                     "one pod's CPU and memory.",
              next_fixes="Stage 2 moves Postgres into its own StatefulSet, so the web tier "
                         "restarts and scales without touching the data."),
        Stage(2, "separate-db", SINGLE_PRIMARY, 1, 0, 0, False, 0, False, "process", True,
              ("web", "db-primary"),
              breaks="One web pod: its crash or rollout is an outage and logs everyone out; one "
                     "primary takes every read and every write.",
              next_fixes="Stage 3 runs three web pods behind a Service and adds two streaming "
                         "replicas that take the reads."),
        Stage(3, "load-balanced", SINGLE_PRIMARY, 3, 2, 0, False, 0, False, "process", True,
              ("db-primary",),
              breaks="Sessions live in each web process, so clients are pinned to one pod "
                     "(ClientIP) and lose their login when it goes; every read still reaches "
                     "Postgres, every write the one primary.",
              next_fixes="Stage 4 adds Redis: a cache in front of the reads and server-side "
                         "sessions, so any web pod serves any user and the pinning goes."),
        Stage(4, "cached", SINGLE_PRIMARY, 3, 2, 0, True, 0, False, "redis", False,
              ("db-primary", "redis"),
              breaks="Every write still goes to one primary, the ceiling for writes and a single "
                     "point of failure; Redis is a new one (sessions, cache); timelines are "
                     "built at read time.",
              next_fixes="Stage 5 splits users over several primaries (shards), fans posts out to "
                         "timelines with Celery workers and puts an nginx edge in front."),
        # Stage 5: no single component stops public reads; each shard's primary still takes its
        # users' writes, and Redis holds every session and the workers' task queue.
        Stage(5, "sharded", SHARDED, 3, 1, 2, True, 2, True, "redis", False,
              ("{shard}-primary", "redis"),
              breaks="Each shard's primary is still the only writer for its users, and Redis "
                     "holds every session and the workers' queue; a new shard count means an "
                     "online data move.",
              next_fixes="The last stage here: next would come primary failover (a replica "
                         "promoted), a replicated Redis, and more shards."),
    )
}

DEFAULT_IMAGES: dict[str, str] = {
    "app": "scalestage/chirp:dev",
    "postgres": "scalestage/postgres:15",
    "redis": "scalestage/redis:7",
    "edge": "scalestage/edge:1",
}
DEFAULT_STORAGE = "1Gi"
EDGE_REPLICAS = 2

# Small requests: a whole stage 5 has to fit on a 2-core laptop running kind.
DEFAULT_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "web": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "database": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "workers": {"requests": {"cpu": "25m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    "redis": {"requests": {"cpu": "25m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
    "edge": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "128Mi"}},
}


@dataclass(frozen=True)
class Plan:
    """One stage with the user's overrides applied: everything a builder needs, nothing it must
    look up."""

    stage: Stage
    web_replicas: int
    read_replicas: int
    shards: int
    workers: int
    edge_replicas: int
    storage: str
    images: Mapping[str, str]
    resources: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    front_door_node_port: int | None = None  # also serve the front door on this node port
    # ClientIP affinity kept while web pods that hold sessions in their process still run (the
    # rollout of 3 → 4): each client then loses its session once, when its pod goes, instead of
    # at every request that lands on a pod of the other kind. Decided by reconcile.py.
    keep_affinity: bool = False
    # Redis kept while web pods that keep sessions (and limiter counts) in it still run (4 → 3);
    # the stage's app wiring does not change with it. Decided by reconcile.py.
    keep_redis: bool = False
    # Which of two name sets the shards use (docs/design.md): "" is `db-shard-N`, "b" is
    # `db-b-shard-N`. A shard count change moves the data into the other set, beside the old one.
    shard_set: str = ""

    @property
    def runs_redis(self) -> bool:
        return self.stage.redis or self.keep_redis

    @property
    def sticky_sessions(self) -> bool:
        return self.stage.sticky_sessions or self.keep_affinity

    @property
    def number(self) -> int:
        return self.stage.number

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def data_layout(self) -> str:
        return self.stage.data_layout

    @property
    def spofs(self) -> list[str]:
        out: list[str] = []
        for spof in self.stage.spofs:
            if "{shard}" in spof:
                out.extend(spof.format(shard=cluster) for cluster in db_clusters(self))
            else:
                out.append(spof)
        return out


def stage_name(number: int) -> str:
    return STAGES[number].name


def resolve(spec: Mapping[str, Any], default_images: Mapping[str, str] | None = None) -> Plan:
    """Merge a ScaleStage spec (already validated by the CRD schema) over its stage's defaults."""
    stage = STAGES[int(spec["stage"])]
    web = spec.get("web") or {}
    database = spec.get("database") or {}
    workers = spec.get("workers") or {}
    images = {**DEFAULT_IMAGES, **(default_images or {}), **(spec.get("images") or {})}
    resources = {
        component: dict((overrides or {}).get("resources") or DEFAULT_RESOURCES[component])
        for component, overrides in (
            ("web", web),
            ("database", database),
            ("workers", workers),
            ("redis", {}),
            ("edge", {}),
        )
    }
    # Counts a stage does not use stay at zero, whatever the spec says (the CRD refuses most of
    # these already; this keeps the builders honest if the schema is ever loosened).
    return Plan(
        stage=stage,
        web_replicas=int(web.get("replicas", stage.web_replicas)) if stage.number >= 3 else 1,
        read_replicas=int(database.get("readReplicas", stage.read_replicas))
        if stage.number >= 3
        else 0,
        shards=int(database.get("shards", stage.shards)) if stage.data_layout == SHARDED else 0,
        workers=int(workers.get("replicas", stage.workers)) if stage.workers else 0,
        edge_replicas=EDGE_REPLICAS if stage.edge else 0,
        storage=str(database.get("storage", DEFAULT_STORAGE)),
        images=images,
        resources=resources,
        front_door_node_port=(spec.get("frontDoor") or {}).get("nodePort"),
    )


@dataclass(frozen=True)
class Component:
    """One workload of a plan; its object is named `<instance>-<name>`."""

    name: str
    kind: str  # Deployment | StatefulSet
    replicas: int


def components(plan: Plan) -> list[Component]:
    """The workloads a plan runs, in the order the architecture page draws them."""
    if plan.data_layout == MONOLITH:
        return [Component("monolith", "StatefulSet", 1)]
    out = []
    if plan.stage.edge:
        out.append(Component("edge", "Deployment", plan.edge_replicas))
    out.append(Component("web", "Deployment", plan.web_replicas))
    if plan.workers:
        out.append(Component("worker", "Deployment", plan.workers))
    if plan.stage.redis:
        out.append(Component("redis", "Deployment", 1))
    for cluster in db_clusters(plan):
        out.append(Component(f"{cluster}-primary", "StatefulSet", 1))
        if plan.read_replicas:
            out.append(Component(f"{cluster}-replica", "StatefulSet", plan.read_replicas))
    return out


SHARD_SETS = ("", "b")


def shard_cluster(index: int, shard_set: str = "") -> str:
    """`db-shard-0`, or `db-b-shard-0` in the other name set."""
    return f"db-{shard_set}-shard-{index}" if shard_set else f"db-shard-{index}"


def other_shard_set(shard_set: str) -> str:
    return SHARD_SETS[1 - SHARD_SETS.index(shard_set)]


def db_clusters(plan: Plan) -> list[str]:
    """Postgres clusters (one primary + its replicas each): `db`, or `db-shard-0` … at stage 5."""
    if plan.data_layout == SINGLE_PRIMARY:
        return ["db"]
    if plan.data_layout == SHARDED:
        return [shard_cluster(i, plan.shard_set) for i in range(plan.shards)]
    return []
