"""Celery workers (stage 5): fan each new post out to the followers' timelines."""

from __future__ import annotations

from ..names import Names
from ..stages import Plan
from . import app
from .common import Manifest, workload

COMPONENT = "worker"


def build(plan: Plan, names: Names) -> list[Manifest]:
    if not plan.workers:
        return []
    pod = {
        "containers": [app.container(plan, names, "worker")],
    }
    return [workload("Deployment", names, COMPONENT, plan.workers, pod, run_as=app.APP_UID)]
