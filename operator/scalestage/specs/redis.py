"""Redis (stages 4–5): cache-aside reads, server-side sessions and, at stage 5, the Celery broker.

One pod, no persistence: what it holds can be rebuilt (cache) or re-established (a new login).
"""

from __future__ import annotations

from ..names import Names
from ..stages import Plan
from .common import Manifest, container, service, workload

REDIS_UID = 999
PORT = 6379
COMPONENT = "redis"


def url(names: Names, db: int) -> str:
    return f"redis://{names.of(COMPONENT)}:{PORT}/{db}"


def build(plan: Plan, names: Names) -> list[Manifest]:
    if not plan.runs_redis:
        return []
    redis = container(
        "redis", plan.images["redis"], plan.resources["redis"],
        command=["redis-server"],
        args=["--port", str(PORT), "--save", "", "--appendonly", "no", "--protected-mode", "no",
              "--dir", "/data"],
        ports={"redis": PORT},
        readinessProbe={"tcpSocket": {"port": PORT}, "periodSeconds": 5},
        mounts={"data": "/data"},
    )
    pod = {
        "containers": [redis],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }
    return [
        workload("Deployment", names, COMPONENT, 1, pod, run_as=REDIS_UID,
                 strategy={"type": "Recreate"}),
        service(names, names.of(COMPONENT), COMPONENT, names.selector(COMPONENT), PORT, PORT),
    ]
