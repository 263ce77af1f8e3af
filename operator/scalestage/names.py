"""Names and labels of a ScaleStage's children: one place, so builders, applier and status agree."""

from __future__ import annotations

from dataclasses import dataclass

MANAGED_BY = "scalestage-operator"
GROUP = "scalestage.dev"
# The ScaleStage resource itself (the CRD in charts/scalestage-operator/crds/).
VERSION = "v1alpha1"
PLURAL = "scalestages"
API_VERSION = f"{GROUP}/{VERSION}"

INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CLUSTER = f"{GROUP}/cluster"  # which Postgres cluster: db, db-shard-0, …
ROLE = f"{GROUP}/role"  # primary | replica
HOLDS_DATA = f"{GROUP}/holds-data"  # "true" on workloads whose volumes are the only copy of data
APPLIED_HASH = f"{GROUP}/applied-hash"  # annotation: hash of what the operator last applied
# annotation on a web pod: the architecture document it was told about (apply.pods_to_refresh)
ARCHITECTURE_SEEN = f"{GROUP}/architecture"


@dataclass(frozen=True)
class Names:
    """Child object names of one ScaleStage instance."""

    instance: str

    def of(self, component: str) -> str:
        return f"{self.instance}-{component}"

    @property
    def front_door(self) -> str:
        """The Service users reach, at every stage (monolith, web or edge behind it)."""
        return self.instance

    @property
    def credentials(self) -> str:
        return self.of("credentials")

    @property
    def architecture(self) -> str:
        """The ConfigMap the architecture page reads (CHIRP_ARCHITECTURE)."""
        return self.of("architecture")

    def rw(self, cluster: str) -> str:
        return self.of(f"{cluster}-rw")

    def ro(self, cluster: str) -> str:
        return self.of(f"{cluster}-ro")

    def labels(self, component: str, **extra: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "chirp",
            INSTANCE: self.instance,
            COMPONENT: component,
            MANAGED_BY_LABEL: MANAGED_BY,
            **extra,
        }

    def selector(self, component: str, **extra: str) -> dict[str, str]:
        """Pod selector: stable for the life of a workload (Deployment/StatefulSet selectors are
        immutable)."""
        return {INSTANCE: self.instance, COMPONENT: component, **extra}

    def pod_selector(self, component: str) -> str:
        """`selector(component)` in the string form list calls take."""
        return selector_string(self.selector(component))

    @property
    def children_selector(self) -> str:
        """Label selector (string form) matching every object this instance's operator manages."""
        return selector_string({INSTANCE: self.instance, MANAGED_BY_LABEL: MANAGED_BY})


def selector_string(labels: dict[str, str]) -> str:
    """Equality-based label selector in the string form the API's list calls take."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
