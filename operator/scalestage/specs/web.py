"""The web tier (stages 2–5): a Deployment of `chirp web` and its Service.

Stage 3 keeps sessions in the web process, so its Service pins each client to one pod (ClientIP
affinity); from stage 4 sessions live in Redis and the affinity goes.
"""

from __future__ import annotations

from ..stages import MONOLITH, Plan
from ..names import Names
from . import app
from .common import Manifest, metadata, pod_security, service, spread

COMPONENT = "web"
PORT = 80


def build(plan: Plan, names: Names) -> list[Manifest]:
    if plan.data_layout == MONOLITH:
        return []
    name = names.of(COMPONENT)
    selector = names.selector(COMPONENT)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(names, name, COMPONENT),
        "spec": {
            "replicas": plan.web_replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": names.labels(COMPONENT)},
                "spec": {
                    "securityContext": pod_security(app.APP_UID),
                    "terminationGracePeriodSeconds": app.TERMINATION_GRACE_SECONDS,
                    "topologySpreadConstraints": spread(selector),
                    # `chirp migrate` is safe to run from several pods at once (contract).
                    "initContainers": [app.container(plan, names, "migrate")],
                    "containers": [app.container(plan, names, "web")],
                },
            },
        },
    }
    return [
        deployment,
        service(names, name, COMPONENT, selector, PORT, app.PORT,
                sticky=plan.stage.sticky_sessions),
    ]
