"""The web tier (stages 2–5): a Deployment of `chirp web` and its Service.

Stage 3 keeps sessions in the web process, so its Service pins each client to one pod (ClientIP
affinity); from stage 4 sessions live in Redis and the affinity goes.
"""

from __future__ import annotations

from ..names import Names
from ..stages import MONOLITH, Plan
from . import app
from .common import Manifest, service, spread, workload

COMPONENT = "web"
PORT = 80


def build(plan: Plan, names: Names) -> list[Manifest]:
    if plan.data_layout == MONOLITH:
        return []
    pod = {
        "terminationGracePeriodSeconds": app.TERMINATION_GRACE_SECONDS,
        "topologySpreadConstraints": spread(names.selector(COMPONENT)),
        # `chirp migrate` is safe to run from several pods at once (contract).
        "initContainers": [app.container(plan, names, "migrate")],
        "containers": [app.container(plan, names, "web")],
    }
    deployment = workload(
        "Deployment", names, COMPONENT, plan.web_replicas, pod, run_as=app.APP_UID,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
    )
    return [
        deployment,
        service(names, names.of(COMPONENT), COMPONENT, names.selector(COMPONENT), PORT, app.PORT,
                sticky=plan.stage.sticky_sessions),
    ]
