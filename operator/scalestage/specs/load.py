"""The load generator Job `<instance>-load` that `scalestage load` creates: `chirp load` from the
app image, against the front door, restricted like every pod, owned by the ScaleStage (deleting it
deletes the Job) but not controlled by it.

Not one of the operator's children: the CLI creates it, so it is labelled managed-by the CLI and
its owner reference is not a controller one; the operator's prune (by its managed-by label) never
touches it, whatever kinds it comes to manage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..names import API_VERSION, MANAGED_BY_LABEL, Names
from ..stages import DEFAULT_IMAGES
from .app import APP_UID
from .common import Manifest, container, pod_security

COMPONENT = "load"
CONTAINER = "load"
MANAGED_BY_CLI = "scalestage-cli"
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"  # the Job controller sets it on its pods
CONTROL_VOLUME = "control"
CONTROL_DIR = "/run/load"
STOP_FILE = f"{CONTROL_DIR}/stop"  # `scalestage load --stop` creates it: the load ends, verifies
RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
# After SIGTERM (the Job or its pod deleted) the load stops and still verifies before exiting.
STOP_MARGIN_SECONDS = 30


@dataclass(frozen=True)
class LoadOptions:
    """`chirp load` options (services/chirp/chirp/load/commands.py)."""

    users: int = 4
    concurrency: int = 4
    rate: float | None = None  # requests per second in total; None: as fast as it goes
    duration: float = 60.0  # 0: until stopped
    verify_timeout: float = 30.0
    mix: str | None = None  # `timeline=40,public=30,post=25,follow=5`


def job_name(instance: str) -> str:
    return Names(instance).of(COMPONENT)


def app_image(scalestage: Mapping[str, Any]) -> str:
    """The image the ScaleStage runs its app from (spec.images.app), else the default."""
    images = (scalestage.get("spec") or {}).get("images") or {}
    return images.get("app") or DEFAULT_IMAGES["app"]


def _number(value: float) -> str:
    return f"{value:g}"


def args(instance: str, options: LoadOptions) -> list[str]:
    out = ["load", "--url", f"http://{Names(instance).front_door}",
           "--users", str(options.users), "--concurrency", str(options.concurrency),
           "--duration", _number(options.duration),
           "--verify-timeout", _number(options.verify_timeout),
           "--stop-file", STOP_FILE]
    if options.rate is not None:
        out += ["--rate", _number(options.rate)]
    if options.mix:
        out += ["--mix", options.mix]
    return out


def owner_reference(scalestage: Mapping[str, Any]) -> dict[str, Any]:
    meta = scalestage["metadata"]
    return {"apiVersion": scalestage.get("apiVersion", API_VERSION), "kind": "ScaleStage",
            "name": meta["name"], "uid": meta["uid"]}


def build(scalestage: Mapping[str, Any], image: str, options: LoadOptions) -> Manifest:
    """The Job for the ScaleStage object `scalestage` (as read from the API: it needs its uid)."""
    names = Names(scalestage["metadata"]["name"])
    labels = names.labels(COMPONENT, **{MANAGED_BY_LABEL: MANAGED_BY_CLI})
    meta: dict[str, Any] = {"name": job_name(names.instance), "labels": labels,
                            "ownerReferences": [owner_reference(scalestage)]}
    if "namespace" in scalestage["metadata"]:
        meta["namespace"] = scalestage["metadata"]["namespace"]
    pod = {
        "restartPolicy": "Never",  # a rerun would be a new load with new users: not a retry
        "securityContext": pod_security(APP_UID),
        "automountServiceAccountToken": False,  # it talks to the app only, never to the API
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": int(options.verify_timeout) + STOP_MARGIN_SECONDS,
        "volumes": [{"name": CONTROL_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}],
        "containers": [container(CONTAINER, image, RESOURCES, args=args(names.instance, options),
                                 mounts={CONTROL_VOLUME: CONTROL_DIR})],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
