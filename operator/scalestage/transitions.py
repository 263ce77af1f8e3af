"""The walk between stages: which step comes next, one stage at a time. Pure.

Decided from where the data lives and from the stage reached, never from "what changed": the
observed data-holding StatefulSets give the current layout, `status.stage` the stage reached (the
one whose plan is applied), `spec.stage` the target. A step inside one layout (2↔3↔4, scaling) is
applied in place; a step across layouts (1↔2, 4↔5, a new shard count) is a data move (moves.py
runs it). A jump
(1 → 5) walks every stage in between, each reaching Ready before the next starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .names import CLUSTER, COMPONENT, HOLDS_DATA
from .stages import MONOLITH, SHARD_SETS, SHARDED, SINGLE_PRIMARY, STAGES, Plan, shard_cluster

CREATE, IN_PLACE, MOVE, REFUSED = "create", "in-place", "move", "refused"


@dataclass(frozen=True)
class Layout:
    """Where a ScaleStage's data lives: in the monolith pod, one primary, or N shards."""

    kind: str
    shards: int = 0
    shard_set: str = ""  # stages.SHARD_SETS: which names the shards have

    def same_data_layout(self, other: Layout) -> bool:
        """Same kind and shard count (the name set is not the user's business)."""
        return (self.kind, self.shards) == (other.kind, other.shards)

    def describe(self) -> str:
        if self.kind == SHARDED:
            return f"{self.shards} shards"
        described = {MONOLITH: "the monolith pod", SINGLE_PRIMARY: "one primary"}
        return described.get(self.kind, self.kind)


MIXED = Layout("mixed")  # data-holders of two layouts at once: a data move in progress


@dataclass(frozen=True)
class Step:
    """What this reconcile does: create `stage`, apply `stage` in place, move data from `source`
    to `stage`, or refuse (change nothing, say why)."""

    action: str
    stage: int
    source: int | None = None
    reason: str = ""
    message: str = ""


def desired_layout(plan: Plan) -> Layout:
    return Layout(plan.data_layout, plan.shards, plan.shard_set)


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
        return MIXED
    if monolith:
        return Layout(MONOLITH)
    if clusters == {"db"}:
        return Layout(SINGLE_PRIMARY)
    for shard_set in SHARD_SETS:
        prefix = shard_cluster(0, shard_set).removesuffix("0")
        if clusters and all(c.startswith(prefix) for c in clusters):
            return Layout(SHARDED, len(clusters), shard_set)
    return MIXED if clusters else None


def moves_data(current_stage: int, desired_stage: int) -> bool:
    """True for stage changes across data layouts (1↔2, 4↔5, and any jump across them)."""
    return STAGES[current_stage].data_layout != STAGES[desired_stage].data_layout


def path(reached: int, target: int) -> list[int]:
    """The stages still to reach, in order: 1 → 4 is [2, 3, 4]; 5 → 3 is [4, 3]."""
    if target >= reached:
        return list(range(reached + 1, target + 1))
    return list(range(reached - 1, target - 1, -1))


def describe(stage: int) -> str:
    return f"stage {stage} ({STAGES[stage].name})"


def infer_reached(layout: Layout, target: int) -> int:
    """The stage reached when the status does not say (e.g. it was lost): the target if its layout
    matches what runs, else the stage of that layout nearest to the target."""
    fits = [n for n, s in STAGES.items() if s.data_layout == layout.kind]
    return min(fits, key=lambda n: (abs(n - target), n))


def next_step(layout: Layout | None, plan: Plan, reached: int | None, reached_ready: bool) -> Step:
    """The step towards `plan` (the target) from what runs now.

    `reached` is status.stage, `reached_ready` whether that stage's components are all ready: a
    walk takes its next step only from a stage that is Ready, so each step is whole before the next.
    """
    target = plan.number
    if layout is None:
        return Step(CREATE, target, reason="Creating", message=f"creating {describe(target)}")
    if layout == MIXED:
        return Step(REFUSED, reached or target, reason="LayoutUnknown", message=(
            "data-holding workloads of two layouts exist and no data move is recorded in the "
            "status; nothing was changed. Delete the ones that hold no data you need."))
    if reached not in STAGES or STAGES[reached].data_layout != layout.kind:
        reached = infer_reached(layout, target)
    if reached == target:
        if layout.same_data_layout(desired_layout(plan)):
            return Step(IN_PLACE, target, reason="InPlace",
                        message=f"{describe(target)} applied in place")
        return Step(MOVE, target, source=reached, reason="Resharding", message=(
            f"moving data from {layout.shards} to {plan.shards} shards"))
    if not reached_ready:
        # finish the step in progress (its rollout) before heading anywhere else
        return Step(IN_PLACE, reached, reason="Walking",
                    message=f"waiting for {describe(reached)} to be ready before going on")
    step = path(reached, target)[0]
    if moves_data(reached, step):
        return Step(MOVE, step, source=reached, reason="MovingData",
                    message=f"moving data from {describe(reached)} to {describe(step)}")
    return Step(IN_PLACE, step, reason="Walking",
                message=f"{describe(reached)} → {describe(step)} in place")
