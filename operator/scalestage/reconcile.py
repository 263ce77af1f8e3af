"""One level-triggered reconcile of one ScaleStage: read, decide (pure parts), apply, report.

Computed from the spec and what exists now, never from "what changed", so the same function serves
creation, updates, resumption after a restart and the periodic drift check.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Mapping

from . import apply, specs, stages, status, transitions
from .names import Names
from .specs import secrets

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    action: str  # create | in-place | refused
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    status_written: bool = False


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        cluster.event(body, "StageChanged", message)
        outcome.events.append("StageChanged")
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
        cluster.event(body, "StageChangeRefused", decision.message, "Warning")
        outcome.events.append("StageChangeRefused")
    if changed(previous, new_status):
        cluster.patch_status(body, new_status)
        outcome.status_written = True
    return outcome


def changed(previous: Mapping, new: Mapping) -> bool:
    return any(previous.get(k) != v for k, v in new.items())

