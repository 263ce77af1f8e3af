"""The children a ScaleStage named `chirp` has at each stage, as `Kind/name` (shared by the
operator-tier tests that create stages and those that move between them)."""

STAGE_2 = {"Secret/chirp-credentials", "ConfigMap/chirp-topology", "StatefulSet/chirp-db-primary",
           "Service/chirp-db-rw", "Deployment/chirp-web", "Service/chirp-web", "Service/chirp"}
STAGE_3 = STAGE_2 | {"StatefulSet/chirp-db-replica", "Service/chirp-db-ro",
                     "PodDisruptionBudget/chirp-web", "PodDisruptionBudget/chirp-db-replica"}
STAGE_4 = STAGE_3 | {"Deployment/chirp-redis", "Service/chirp-redis"}
EXPECTED_CHILDREN = {
    1: {"Secret/chirp-credentials", "ConfigMap/chirp-topology", "StatefulSet/chirp-monolith",
        "Service/chirp"},
    2: STAGE_2,
    3: STAGE_3,
    4: STAGE_4,
    5: {"Secret/chirp-credentials", "ConfigMap/chirp-topology", "Deployment/chirp-web",
        "Service/chirp-web", "Service/chirp", "PodDisruptionBudget/chirp-web",
        "Deployment/chirp-redis", "Service/chirp-redis", "Deployment/chirp-worker",
        "PodDisruptionBudget/chirp-worker", "ConfigMap/chirp-edge-config", "Deployment/chirp-edge",
        "Service/chirp-edge", "PodDisruptionBudget/chirp-edge"}
    | {f"{kind}/chirp-db-shard-{i}-{suffix}" for i in range(2)
       for kind, suffix in (("StatefulSet", "primary"), ("StatefulSet", "replica"),
                            ("Service", "rw"), ("Service", "ro"))},
}
