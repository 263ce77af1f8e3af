"""Celery workers (stage 5): fan each new post out to the followers' timelines."""

from __future__ import annotations

from ..names import Names
from ..stages import Plan
from . import app
from .common import Manifest, metadata, pod_security

COMPONENT = "worker"


def build(plan: Plan, names: Names) -> list[Manifest]:
    if not plan.workers:
        return []
    selector = names.selector(COMPONENT)
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(names, names.of(COMPONENT), COMPONENT),
            "spec": {
                "replicas": plan.workers,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": names.labels(COMPONENT)},
                    "spec": {
                        "securityContext": pod_security(app.APP_UID),
                        "containers": [app.container(plan, names, "worker")],
                    },
                },
            },
        }
    ]
