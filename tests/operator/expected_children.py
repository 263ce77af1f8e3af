"""What a ScaleStage named `chirp` runs at each stage with its default spec (the spec of
examples/stage-N.yaml): written out by hand, the one list every tier checks the operator against
(the operator tier for the objects and the status, the e2e tier for the pods). Never computed
from the operator's own code, so a test against it can fail."""

INSTANCE = "chirp"
STAGE_NAMES = {1: "monolith", 2: "separate-db", 3: "load-balanced", 4: "cached", 5: "sharded"}

# component: (kind, replicas); the workload is named `chirp-<component>`.
WORKLOADS: dict[int, dict[str, tuple[str, int]]] = {
    1: {"monolith": ("StatefulSet", 1)},
    2: {"web": ("Deployment", 1), "db-primary": ("StatefulSet", 1)},
    3: {"web": ("Deployment", 3), "db-primary": ("StatefulSet", 1),
        "db-replica": ("StatefulSet", 2)},
    4: {"web": ("Deployment", 3), "db-primary": ("StatefulSet", 1),
        "db-replica": ("StatefulSet", 2), "redis": ("Deployment", 1)},
    5: {"edge": ("Deployment", 2), "web": ("Deployment", 3), "worker": ("Deployment", 2),
        "redis": ("Deployment", 1)}
    | {f"db-shard-{i}-{role}": ("StatefulSet", 1) for i in range(2)
       for role in ("primary", "replica")},
}

# The single points of failure the status lists (`spofs`), in its order.
SPOFS: dict[int, list[str]] = {
    1: ["monolith"],
    2: ["web", "db-primary"],
    3: ["db-primary"],
    4: ["db-primary", "redis"],
    5: ["db-shard-0-primary", "db-shard-1-primary", "redis"],
}

# Everything else, as `Kind/name`.
_COMMON = {"Secret/chirp-credentials", "ConfigMap/chirp-architecture", "Service/chirp",
           # the architecture page's read-only access to pods (web pods and the monolith)
           "ServiceAccount/chirp-architecture-reader", "Role/chirp-architecture-reader",
           "RoleBinding/chirp-architecture-reader"}
_ONE_PRIMARY = _COMMON | {"Service/chirp-db-rw", "Service/chirp-web"}
_REPLICAS = _ONE_PRIMARY | {"Service/chirp-db-ro", "PodDisruptionBudget/chirp-web",
                            "PodDisruptionBudget/chirp-db-replica"}
_OTHERS: dict[int, set[str]] = {
    1: _COMMON | {"Service/chirp-monolith-db"},
    2: _ONE_PRIMARY | {"Service/chirp-db-ro"},  # leads to the primary until stage 3
    3: _REPLICAS,
    4: _REPLICAS | {"Service/chirp-redis"},
    5: _COMMON | {"Service/chirp-web", "PodDisruptionBudget/chirp-web", "Service/chirp-redis",
                  "PodDisruptionBudget/chirp-worker", "ConfigMap/chirp-edge-config",
                  "Service/chirp-edge", "PodDisruptionBudget/chirp-edge"}
    | {f"Service/chirp-db-shard-{i}-{end}" for i in range(2) for end in ("rw", "ro")},
}

# NetworkPolicies (docs/network-policies.md): one for each workload's pods, one holding every pod
# of the instance to DNS only, and one for the pods of `scalestage load`.
_POLICIES = {"default", "load"}

# Every child the operator manages at each stage, as `Kind/name`.
EXPECTED_CHILDREN: dict[int, set[str]] = {
    stage: {f"{kind}/{INSTANCE}-{component}" for component, (kind, _) in workloads.items()}
    | {f"NetworkPolicy/{INSTANCE}-netpol-{group}" for group in _POLICIES | set(workloads)}
    | _OTHERS[stage]
    for stage, workloads in WORKLOADS.items()
}


def replicas(stage: int) -> dict[str, int]:
    """Component → desired replicas at this stage (what the status and the pods show)."""
    return {component: count for component, (_, count) in WORKLOADS[stage].items()}
