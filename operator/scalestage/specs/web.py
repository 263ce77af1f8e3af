"""The web tier (stages 2–5): a Deployment of `chirp web` and its Service.

Stages 2 and 3 keep sessions in the web process, so the Service pins each client to one pod
(ClientIP affinity: at stage 2 too, where a rollout briefly runs two pods and 2→3 adds two more);
from stage 4 sessions live in Redis and the affinity goes.

The pod template is the same at stages 2 and 3 (the stage and whether replicas are read come from
the architecture document, mounted and re-read live), so 2→3 only adds pods and 3→2 only removes
them: the pod holding sessions is never restarted (docs/contracts.md, Sessions).
"""

from __future__ import annotations

from ..names import Names
from ..stages import MONOLITH, Plan
from . import access, app
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
        "initContainers": [app.container(plan, names, "migrate", live_architecture=True)],
        "containers": [app.container(plan, names, "web", live_architecture=True)],
        "volumes": [app.architecture_volume(names)],
        **access.pod_fields(names),  # the architecture page reads pods live
    }
    # A stage change rolls every web pod: all new pods start at once (maxSurge 100 %) and the old
    # ones stay until they are Ready (maxUnavailable 0), so a step waits for one pod start, not
    # three in a row.
    deployment = workload(
        "Deployment", names, COMPONENT, plan.web_replicas, pod, run_as=app.APP_UID,
        strategy={"type": "RollingUpdate",
                  "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "100%"}},
    )
    return [
        deployment,
        service(names, names.of(COMPONENT), COMPONENT, names.selector(COMPONENT), PORT, app.PORT,
                sticky=plan.sticky_sessions),
    ]
