"""One level-triggered reconcile of one ScaleStage: read, decide (pure parts), apply, report.

Computed from the spec and what exists now, never from "what changed", so the same function serves
creation, updates, resumption after a restart and the periodic drift check. `Operator` is what one
operator process owns (its API client, default images, a lock per object) and runs the passes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubernetes import client, config
from kubernetes.dynamic.resource import Resource

from . import apply, specs, stages, status, transitions
from .names import Names
from .specs import secrets

log = logging.getLogger(__name__)

IMAGE_ENV = "SCALESTAGE_IMAGE_{}"  # SCALESTAGE_IMAGE_APP, …: default images when a spec names none


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the ScaleStage (the handler posts it through kopf)."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    action: str  # create | in-place | refused
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status_written: bool = False
    writes: int = 0  # write calls made (0 when nothing changed)


class Operator:
    """One operator process: its API resources (one client), its default images, and a lock per
    ScaleStage (a timer and a change handler may fire together: one reconcile at a time each).
    Created in kopf's startup handler and kept in kopf's memo; nothing here is module-global."""

    def __init__(self, resources: Mapping[str, Resource],
                 default_images: Mapping[str, str] | None = None):
        self.resources = resources  # apply.discover()
        self.default_images = dict(default_images or {})
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def from_environment(cls) -> Operator:
        """In a pod: its service account; elsewhere: the kubeconfig (KUBECONFIG or ~/.kube)."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
        api = client.ApiClient(configuration)
        api.user_agent = apply.FIELD_MANAGER
        return cls(apply.discover(api), default_images_from(os.environ))

    def lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def reconcile(self, namespace: str, name: str) -> tuple[dict, Outcome] | None:
        """One pass over the ScaleStage as it is now; None when it is gone or going."""
        with self.lock(namespace, name):
            cluster = apply.Cluster(self.resources)
            # Fresh from the API server (a read): a timer and a change handler queued behind each
            # other must not act on the status the other one has just replaced.
            current = cluster.get_scalestage(namespace, name)
            if current is None or current["metadata"].get("deletionTimestamp"):
                return None
            outcome = reconcile(cluster, current, self.default_images)
            outcome.writes = cluster.writes
            return current, outcome


def default_images_from(environ: Mapping[str, str]) -> dict[str, str]:
    return {component: environ[IMAGE_ENV.format(component.upper())]
            for component in stages.DEFAULT_IMAGES
            if environ.get(IMAGE_ENV.format(component.upper()))}


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def workloads_by_component(observed: Mapping, instance: str) -> dict[str, Mapping]:
    """Observed Deployments/StatefulSets keyed by component name (`web`, `db-primary`, …)."""
    prefix = f"{instance}-"
    return {
        name[len(prefix):]: obj
        for (kind, name), obj in observed.items()
        if kind in ("Deployment", "StatefulSet") and name.startswith(prefix)
    }


def reconcile(
    cluster: apply.Cluster,
    body: Mapping,
    default_images: Mapping[str, str] | None = None,
) -> Outcome:
    meta = body["metadata"]
    names = Names(meta["name"])
    previous = dict(body.get("status") or {})
    plan = stages.resolve(body["spec"], default_images)
    observed = apply.observe(cluster, meta["namespace"], names.children_selector, meta["uid"])

    layout = transitions.observed_layout(
        obj for (kind, _), obj in observed.items() if kind == "StatefulSet")
    decision = transitions.decide(layout, plan, previous.get("stage"))
    if decision.action == transitions.REFUSED:
        return refuse(cluster, body, previous, decision)

    credentials = secrets.credentials(observed.get(("Secret", names.credentials)))
    desired = specs.build_all(plan, names, credentials)
    applied, pruned = apply.sync(cluster, desired, observed, body)
    outcome = Outcome(decision.action, applied, pruned)
    if applied or pruned:
        log.info("%s/%s: applied %s; pruned %s", meta["namespace"], meta["name"],
                 applied or "nothing", pruned or "nothing")
        # Read back what we changed, so the status reflects it (reads only).
        observed = apply.observe(cluster, meta["namespace"], names.children_selector, meta["uid"])

    new_status = status.summarize(plan, workloads_by_component(observed, names.instance),
                                  meta.get("generation", 0), previous, now())
    if previous.get("stage") != plan.number:
        message = (f"stage {plan.number} ({plan.name})" if not previous.get("stage") else
                   f"stage {previous['stage']} ({stages.stage_name(previous['stage'])}) → "
                   f"stage {plan.number} ({plan.name})")
        outcome.events.append(Event("Normal", "StageChanged", message))
    if changed(previous, new_status):
        cluster.patch_status(body, new_status)
        outcome.status_written = True
    return outcome


def refuse(cluster: apply.Cluster, body: Mapping, previous: dict,
           decision: transitions.Decision) -> Outcome:
    """Change nothing; say why once (condition + Warning event), then stay quiet while it holds."""
    outcome = Outcome(decision.action)
    blocked = status.condition("Progressing", False, decision.reason, decision.message)
    new_status = status.with_condition(previous, blocked, now())
    new_status["observedGeneration"] = body["metadata"].get("generation", 0)
    already_said = any(c.get("reason") == decision.reason and c.get("message") == decision.message
                       for c in previous.get("conditions") or [])
    if not already_said:
        outcome.events.append(Event("Warning", "StageChangeRefused", decision.message))
    if changed(previous, new_status):
        cluster.patch_status(body, new_status)
        outcome.status_written = True
    return outcome


def changed(previous: Mapping, new: Mapping) -> bool:
    return any(previous.get(k) != v for k, v in new.items())

