"""Which stage changes can happen in place, and which move data (and so need a migration).

Decided from where the data lives, not from "what changed": the observed data-holding StatefulSets
give the current layout, the plan gives the desired one. Same layout: apply in place (scaling,
2↔3 replicas, 3↔4 Redis). Different layout (1↔2, 4↔5, a new shard count): data must move, which
the migration work will do; until then the operator refuses and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .names import CLUSTER, COMPONENT, HOLDS_DATA
from .stages import MONOLITH, SHARDED, SINGLE_PRIMARY, STAGES, Plan

IN_PLACE, CREATE, REFUSED = "in-place", "create", "refused"


@dataclass(frozen=True)
class Layout:
    """Where a ScaleStage's data lives: in the monolith pod, one primary, or N shards."""

    kind: str
    shards: int = 0

    def describe(self) -> str:
        if self.kind == SHARDED:
            return f"{self.shards} shards"
        described = {MONOLITH: "the monolith pod", SINGLE_PRIMARY: "one primary"}
        return described.get(self.kind, self.kind)


@dataclass(frozen=True)
class Decision:
    action: str  # create | in-place | refused
    reason: str  # CamelCase, for conditions and events
    message: str


def desired_layout(plan: Plan) -> Layout:
    return Layout(plan.data_layout, plan.shards)


def observed_layout(workloads: Iterable[Mapping]) -> Layout | None:
    """The layout the observed data-holding workloads show; None when there are none yet."""
    clusters = set()
    monolith = False
    for obj in workloads:
        labels = obj.get("metadata", {}).get("labels") or {}
        if labels.get(HOLDS_DATA) != "true":
            continue
        if labels.get(COMPONENT) == "monolith":
            monolith = True
        elif labels.get(CLUSTER):
            clusters.add(labels[CLUSTER])
    if monolith and clusters:
        return Layout("mixed")  # half-way through a move: never something to build on
    if monolith:
        return Layout(MONOLITH)
    if clusters == {"db"}:
        return Layout(SINGLE_PRIMARY)
    if clusters and all(c.startswith("db-shard-") for c in clusters):
        return Layout(SHARDED, len(clusters))
    return Layout("mixed") if clusters else None


def moves_data(current_stage: int, desired_stage: int) -> bool:
    """True for stage changes across data layouts (1↔2, 4↔5, and any jump across them)."""
    return STAGES[current_stage].data_layout != STAGES[desired_stage].data_layout


def decide(observed: Layout | None, plan: Plan, current_stage: int | None = None) -> Decision:
    desired = desired_layout(plan)
    target = f"stage {plan.number} ({plan.name})"
    if observed is None:
        return Decision(CREATE, "Creating", f"creating {target}")
    if observed == desired:
        return Decision(IN_PLACE, "InPlace", f"{target} applied in place")
    origin = (
        f"stage {current_stage} ({STAGES[current_stage].name})"
        if current_stage in STAGES
        else "the current stage"
    )
    return Decision(
        REFUSED,
        "MigrationRequired",
        f"moving from {origin} to {target} moves data ({observed.describe()} → "
        f"{desired.describe()}), and data migrations are not available yet; nothing was changed. "
        f"Set spec back to {origin} to keep managing it.",
    )
