"""Status from observed children: per-component readiness, phase, SPOFs and conditions. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import moves, transitions
from .stages import STAGES, Component, Plan, components

PENDING, PROGRESSING, READY, DEGRADED = "Pending", "Progressing", "Ready", "Degraded"
MIGRATING, FAILED = "Migrating", "Failed"
NAME_TAKEN = "NameTaken"  # the reason when a child's name belongs to another object


def component_status(component: Component, observed: Mapping | None) -> dict[str, Any]:
    ready = ((observed or {}).get("status") or {}).get("readyReplicas") or 0
    return {"name": component.name, "kind": component.kind, "desired": component.replicas,
            "ready": int(ready)}


def rolling_out(component: Component, observed: Mapping | None) -> bool:
    """Still converging: missing, its spec not yet seen by its controller, pods not yet updated,
    or pods of the old template still running (their readiness must not count as the new one's)."""
    if observed is None:
        return True
    generation = observed.get("metadata", {}).get("generation", 0)
    status = observed.get("status") or {}
    if status.get("observedGeneration", 0) < generation:
        return True
    if (status.get("updatedReplicas") or 0) < component.replicas:
        return True
    if (status.get("replicas") or 0) > component.replicas:  # a surge pod or an old one left
        return True
    # a StatefulSet's rollout is over when every pod runs the update revision
    return status.get("currentRevision", "") != status.get("updateRevision", "")


def component_ready(component: Component, observed: Mapping | None) -> bool:
    """All its pods ready and rolled out."""
    return (component_status(component, observed)["ready"] >= component.replicas
            and not rolling_out(component, observed))


def workload_ready(manifest: Mapping, observed: Mapping | None) -> bool:
    """One workload we asked for is there, rolled out, and all its pods ready."""
    wanted = Component(manifest["metadata"]["name"], manifest["kind"],
                       manifest["spec"].get("replicas", 1))
    return component_ready(wanted, observed)


def plan_ready(plan: Plan, observed: Mapping[str, Mapping]) -> bool:
    """Every component of the plan ready and rolled out (`observed` by component name)."""
    return all(component_ready(c, observed.get(c.name)) for c in components(plan))


def phase_of(rows: Sequence[Mapping], rolling: bool) -> str:
    if all(r["ready"] >= r["desired"] for r in rows) and not rolling:
        return READY
    if not any(r["ready"] for r in rows):
        return PENDING
    return PROGRESSING if rolling else DEGRADED


def summarize(
    plan: Plan,
    observed: Mapping[str, Mapping],
    generation: int,
    previous: Mapping | None,
    now: str,
) -> dict[str, Any]:
    """The whole status block. `observed` maps component name (e.g. "web") to its workload."""
    wanted = components(plan)
    rows = [component_status(c, observed.get(c.name)) for c in wanted]
    rolling_names = [c.name for c in wanted if rolling_out(c, observed.get(c.name))]
    rolling = bool(rolling_names)
    phase = phase_of(rows, rolling)
    lagging = ", ".join(f"{r['name']} {r['ready']}/{r['desired']}" for r in rows
                        if r["ready"] < r["desired"]) or f"rollout of {', '.join(rolling_names)}"
    spofs = plan.spofs
    conditions = [
        condition("Ready", phase == READY,
                  "AllComponentsReady" if phase == READY else "ComponentsNotReady",
                  "every component is ready" if phase == READY else f"waiting for {lagging}"),
        condition("Progressing", rolling and phase != READY,
                  "RollingOut" if rolling and phase != READY else "Converged",
                  f"applying stage {plan.number} ({plan.name})" if rolling and phase != READY
                  else f"stage {plan.number} ({plan.name}) applied"),
        condition("Degraded", phase == DEGRADED,
                  "ComponentsUnavailable" if phase == DEGRADED else "AsExpected",
                  f"below desired: {lagging}" if phase == DEGRADED
                  else "no component below desired"),
    ]
    return {
        "phase": phase,
        "stage": plan.number,
        "stageName": plan.name,
        "observedGeneration": generation,
        "components": rows,
        "ready": f"{sum(r['ready'] >= r['desired'] for r in rows)}/{len(rows)}",
        "spofs": spofs,
        "spofSummary": ", ".join(spofs) if spofs else "none",
        "conditions": merge_conditions((previous or {}).get("conditions") or [], conditions, now),
    }


def condition(kind: str, true: bool, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": "True" if true else "False", "reason": reason,
            "message": message}


def merge_conditions(
    previous: Sequence[Mapping], new: Sequence[Mapping], now: str
) -> list[dict[str, str]]:
    """Conditions with lastTransitionTime kept while their status holds (so an idle status is
    byte-for-byte the same and needs no write); conditions of other types are kept as they are."""
    before = {c.get("type"): c for c in previous}
    out = []
    for c in new:
        old = before.pop(c["type"], None)
        since = old.get("lastTransitionTime") if old and old.get("status") == c["status"] else None
        out.append({**c, "lastTransitionTime": since or now})
    return out + [dict(c) for c in before.values()]


def with_condition(status: Mapping, new: Mapping, now: str) -> dict[str, Any]:
    """The status with one condition set (e.g. Progressing=False, MigrationRequired), the others
    kept."""
    merged = merge_conditions(status.get("conditions") or [], [new], now)
    return {**status, "conditions": merged}


def held(taken: Sequence[tuple[str, str]], generation: int, previous: Mapping,
         now: str) -> dict[str, Any]:
    """The status while children's names belong to other objects (`taken`: ("Kind/name", who
    controls it) each): nothing applied, never Ready. The rest of the status (stage reached,
    components, a move's record) stays as it was: only the keys returned are written."""
    held_by = "; ".join(f"{child} exists already, controlled by {holder}"
                        for child, holder in taken)
    one = len(taken) == 1
    message = (f"{held_by}; nothing is applied until {'it is' if one else 'they are'} free "
               f"(delete {'that object' if one else 'those objects'} or give this ScaleStage "
               f"another name)")
    return {
        "phase": FAILED,
        "observedGeneration": generation,
        "progress": f"name taken: {', '.join(child for child, _ in taken)}",
        "conditions": merge_conditions(previous.get("conditions") or [], [
            condition("Ready", False, NAME_TAKEN, message),
            condition("Progressing", False, NAME_TAKEN, message)], now),
    }


def walk(reached: int, target: int, summary: Mapping, now: str) -> dict[str, Any]:
    """The walk's part of the status: the target, the stages still ahead, a one-line progress;
    never Ready for a stage that is not the target (a walk half-way is Progressing)."""
    ahead = transitions.path(reached, target)
    out: dict[str, Any] = {"targetStage": target, "path": ahead, "migration": None}
    if not ahead:
        out["progress"] = summary["ready"]
        return out
    out["progress"] = f"stage {reached}, walking to {target} (next: {ahead[0]})"
    if summary["phase"] == READY:
        out["phase"] = PROGRESSING
        message = (f"{transitions.describe(reached)} reached; walking to "
                   f"{transitions.describe(target)} through {', '.join(map(str, ahead))}")
        out["conditions"] = merge_conditions(summary["conditions"], [
            condition("Ready", False, "Walking", message),
            condition("Progressing", True, "Walking", message)], now)
    return out


def moving(source: int, target: int, record: Mapping, wanted: int, summary: Mapping,
           now: str) -> dict[str, Any]:
    """The status while a data move runs: phase Migrating (Failed when a step failed), the
    move's record and progress, the stage reached still the source until the move is done."""
    failed = record.get("step") == moves.FAILED
    line = moves.summary(record)
    message = record.get("message", "") if failed else f"moving data: {line}"
    return {
        "phase": FAILED if failed else MIGRATING,
        "stage": source,
        "stageName": STAGES[source].name,
        "targetStage": wanted,
        "path": [target, *transitions.path(target, wanted)],
        "migration": dict(record),
        "progress": line,
        "conditions": merge_conditions(summary["conditions"], [
            condition("Ready", False, "MoveFailed" if failed else "Migrating", message),
            condition("Progressing", not failed, "MoveFailed" if failed else "MovingData",
                      message)], now),
    }
