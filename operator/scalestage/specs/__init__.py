"""Pure builders: (plan, names) -> the manifests (dicts) one component needs at this stage.

A builder returns nothing for an object that must not exist at the plan's stage; the applier prunes
whatever it finds that no builder asked for.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..names import Names
from ..stages import MONOLITH, Plan
from . import (
    access,
    architecture,
    edge,
    frontdoor,
    monolith,
    network,
    pdb,
    postgres,
    redis,
    secrets,
    web,
    workers,
)
from .common import Manifest

# network last: its policies select, by label, the pods the builders before it make (the applier
# orders by kind, apply.KINDS, so the policies are still applied before those pods)
BUILDERS = (architecture, access, monolith, postgres, redis, web, workers, edge, frontdoor, pdb,
            network)


def build_all(plan: Plan, names: Names, credentials: Mapping[str, str]) -> list[Manifest]:
    """Every child of one ScaleStage, the credentials Secret first (pods refer to it)."""
    out = secrets.build(plan, names, credentials)
    for builder in BUILDERS:
        out += builder.build(plan, names)
    return out


def data_objects(plan: Plan, names: Names) -> list[Manifest]:
    """The plan's databases (the monolith pod at stage 1) and their Services: what a data move
    creates before it copies, and keeps until the move is complete."""
    if plan.data_layout == MONOLITH:
        return monolith.build(plan, names)
    return postgres.build(plan, names)


def front_objects(plan: Plan, names: Names) -> list[Manifest]:
    """The front door and what faces users behind it at this plan (monolith, web or edge)."""
    component, _ = frontdoor.target(plan)
    builder = {monolith.COMPONENT: monolith, web.COMPONENT: web, edge.COMPONENT: edge}[component]
    return frontdoor.build(plan, names) + builder.build(plan, names)


def front_workload(plan: Plan, names: Names) -> Manifest:
    """The Deployment or StatefulSet whose pods answer behind the front door."""
    component, _ = frontdoor.target(plan)
    return next(m for m in front_objects(plan, names)
                if m["kind"] in ("Deployment", "StatefulSet")
                and m["metadata"]["name"] == names.of(component))
