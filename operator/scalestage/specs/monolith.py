"""Stage 1: one pod holding everything, Chirp and its Postgres, with one volume.

A StatefulSet of one keeps the volume bound to the pod across restarts. Postgres runs as a native
sidecar (an init container that keeps running), so `chirp migrate` starts only once it accepts
connections and the web container finds it on localhost.
"""

from __future__ import annotations

from typing import Any

from ..names import HOLDS_DATA, Names
from ..stages import MONOLITH, Plan
from . import access, app, postgres
from .common import Manifest, service, workload

COMPONENT = "monolith"


def database_service(names: Names) -> str:
    """The Service in front of the monolith's Postgres: a data move to or from stage 1 dials it
    (the other side's replication connects to it, and writers follow it after a cutover)."""
    return names.of(f"{COMPONENT}-db")


def build(plan: Plan, names: Names) -> list[Manifest]:
    if plan.data_layout != MONOLITH:
        return []
    labels = {HOLDS_DATA: "true"}
    database = run_as(postgres.container(plan, names), postgres.POSTGRES_UID)
    database["restartPolicy"] = "Always"  # native sidecar
    database["startupProbe"] = {**postgres.ready_probe(), "periodSeconds": 2,
                                "failureThreshold": 150}
    migrate, web = (run_as(app.container(plan, names, command), app.APP_UID)
                    for command in ("migrate", "web"))
    pod = {
        # the web container stops first (its preStop sleep, then gunicorn's graceful stop);
        # Postgres, a sidecar, stops after it
        "terminationGracePeriodSeconds": app.TERMINATION_GRACE_SECONDS,
        "initContainers": [database, migrate],
        "containers": [web],
        "volumes": [postgres.socket_volume()],
        **access.pod_fields(names),  # the architecture page reads pods live
    }
    return [
        # No pod-wide user: each container runs as its image's (run_as below). The volume is
        # Postgres's: group-writable for uid 999.
        workload("StatefulSet", names, COMPONENT, 1, pod, run_as=None,
                 fs_group=postgres.POSTGRES_UID, labels=labels,
                 serviceName=names.front_door,
                 volume_claims=[postgres.volume_claim(plan, names, COMPONENT, labels)]),
        service(names, database_service(names), COMPONENT, names.selector(COMPONENT),
                postgres.PORT, postgres.PORT),
    ]


def run_as(container: dict[str, Any], uid: int) -> dict[str, Any]:
    """The container with its own uid and gid: the pod's two programs run as different users."""
    container["securityContext"] = {**container["securityContext"], "runAsUser": uid,
                                    "runAsGroup": uid}
    return container
