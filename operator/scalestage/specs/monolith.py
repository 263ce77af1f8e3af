"""Stage 1: one pod holding everything, Chirp and its Postgres, with one volume.

A StatefulSet of one keeps the volume bound to the pod across restarts. Postgres runs as a native
sidecar (an init container that keeps running), so `chirp migrate` starts only once it accepts
connections and the web container finds it on localhost.
"""

from __future__ import annotations

from ..names import HOLDS_DATA, Names
from ..stages import MONOLITH, Plan
from . import app, postgres
from .common import Manifest, metadata

COMPONENT = "monolith"


def build(plan: Plan, names: Names) -> list[Manifest]:
    if plan.data_layout != MONOLITH:
        return []
    labels = {HOLDS_DATA: "true"}
    database = postgres.container(plan, names)
    database["restartPolicy"] = "Always"  # native sidecar
    database["startupProbe"] = {**postgres.ready_probe(), "periodSeconds": 2, "failureThreshold": 150}
    database["securityContext"] = {**database["securityContext"], "runAsUser": postgres.POSTGRES_UID,
                                   "runAsGroup": postgres.POSTGRES_UID}
    chirp = [app.container(plan, names, "migrate"), app.container(plan, names, "web")]
    for container in chirp:
        container["securityContext"] = {**container["securityContext"], "runAsUser": app.APP_UID,
                                        "runAsGroup": app.APP_UID}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": metadata(names, names.of(COMPONENT), COMPONENT, **labels),
            "spec": {
                "replicas": 1,
                "serviceName": names.front_door,
                "selector": {"matchLabels": names.selector(COMPONENT)},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete",
                                                         "whenScaled": "Delete"},
                "template": {
                    "metadata": {"labels": names.labels(COMPONENT, **labels)},
                    "spec": {
                        "securityContext": {
                            "runAsNonRoot": True,
                            # The volume is Postgres's: group-writable for uid 999.
                            "fsGroup": postgres.POSTGRES_UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        # the web container drains first; Postgres (a sidecar) stops after it
                        "terminationGracePeriodSeconds": app.TERMINATION_GRACE_SECONDS,
                        "initContainers": [database, chirp[0]],
                        "containers": [chirp[1]],
                        "volumes": [postgres.socket_volume()],
                    },
                },
                "volumeClaimTemplates": [postgres.volume_claim(plan, names, COMPONENT, labels)],
            },
        }
    ]
