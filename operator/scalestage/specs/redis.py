"""Redis (stages 4–5): cache-aside reads, server-side sessions and, at stage 5, the Celery broker.

One pod, no persistence: what it holds can be rebuilt (cache) or re-established (a new login).
"""

from __future__ import annotations

from ..names import Names
from ..stages import Plan
from .common import Manifest, container_security, metadata, pod_security, service

REDIS_UID = 999
PORT = 6379
COMPONENT = "redis"


def url(names: Names, db: int) -> str:
    return f"redis://{names.of(COMPONENT)}:{PORT}/{db}"


def build(plan: Plan, names: Names) -> list[Manifest]:
    if not plan.stage.redis:
        return []
    name = names.of(COMPONENT)
    selector = names.selector(COMPONENT)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(names, name, COMPONENT),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": names.labels(COMPONENT)},
                "spec": {
                    "securityContext": pod_security(REDIS_UID),
                    "containers": [
                        {
                            "name": "redis",
                            "image": plan.images["redis"],
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["redis-server"],
                            "args": ["--port", str(PORT), "--save", "", "--appendonly", "no",
                                     "--protected-mode", "no", "--dir", "/data"],
                            "ports": [{"name": "redis", "containerPort": PORT, "protocol": "TCP"}],
                            "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 5},
                            "resources": dict(plan.resources["redis"]),
                            "securityContext": container_security(),
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }
    return [deployment, service(names, name, COMPONENT, selector, PORT, PORT)]
