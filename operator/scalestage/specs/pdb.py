"""PodDisruptionBudgets: for every workload with two or more pods, drains take one at a time.

A single pod gets none: a budget on it would block node drains without protecting anything.
"""

from __future__ import annotations

from ..names import CLUSTER, ROLE, Names
from ..stages import Plan, components
from .common import Manifest, metadata


def pod_selector(names: Names, component: str) -> dict[str, str]:
    """The selector of a component's pods (database components are `<cluster>-<role>`)."""
    if component.startswith("db-"):
        cluster, role = component.rsplit("-", 1)
        return names.selector("db", **{CLUSTER: cluster, ROLE: role})
    return names.selector(component)


def build(plan: Plan, names: Names) -> list[Manifest]:
    return [
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata(names, names.of(c.name), "disruption-budget"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": pod_selector(names, c.name)}},
        }
        for c in components(plan)
        if c.replicas >= 2
    ]
