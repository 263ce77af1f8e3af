"""The architecture ConfigMap: what Chirp's architecture page draws (CHIRP_ARCHITECTURE in
docs/contracts.md), derived from the resolved plan only.

Besides the components and SPOFs the page needs, live (docs/architecture-page.md): the instance
(its ScaleStage), each component's pod selector (so the app keeps no naming rules of its own),
the request path as arrows between components, and for every stage what breaks there and what the
next stage fixes (the stage table's text: one source for the page and the docs).
"""

from __future__ import annotations

import json

from ..names import CLUSTER, ROLE, Names
from ..stages import STAGES, Plan, components, db_clusters
from .common import Manifest, metadata

COMPONENT = "architecture"
KEY = "architecture.json"
ENV = "CHIRP_ARCHITECTURE"  # every Chirp container reads the document from this variable
DB_ROLES = ("primary", "replica")


def selector(names: Names, component: str) -> dict[str, str]:
    """The labels of a component's pods: Postgres pods are `db` pods of one cluster and role
    (specs/postgres.py), every other component's pods carry its name."""
    cluster, _, role = component.rpartition("-")
    if cluster.startswith("db") and role in DB_ROLES:
        return names.selector("db", **{CLUSTER: cluster, ROLE: role})
    return names.selector(component)


def flows(plan: Plan) -> list[dict[str, str]]:
    """The arrows of this stage's request path, in the order a request takes them: the client
    reaches the front (edge, web or monolith), web reads through the cache to replicas and writes
    to primaries; at stage 5 workers take fan-out tasks from Redis and write timelines there."""
    present = [c.name for c in components(plan)]
    front = next(n for n in ("edge", "web", "monolith") if n in present)
    out = [{"from": "client", "to": front, "what": "HTTP"}]
    if "edge" in present:
        out.append({"from": "edge", "to": "web", "what": "pages, API"})
    if "redis" in present:
        out.append({"from": "web", "to": "redis",
                    "what": "cache, sessions" + (", tasks" if plan.workers else "")})
    for cluster in db_clusters(plan):
        replicas = f"{cluster}-replica" in present
        reads = plan.number >= 3 and replicas
        out.append({"from": "web", "to": f"{cluster}-primary",
                    "what": "writes" if reads else "reads, writes"})
        if reads:
            out.append({"from": "web", "to": f"{cluster}-replica", "what": "reads"})
    if plan.workers:
        out.append({"from": "worker", "to": "redis", "what": "tasks in, timelines out"})
        out += [{"from": "worker", "to": f"{cluster}-primary", "what": "followers"}
                for cluster in db_clusters(plan)]
    return out


def lessons() -> list[dict]:
    """Every stage's name, what breaks there and what the next one fixes."""
    return [{"stage": s.number, "stageName": s.name, "breaks": s.breaks,
             "nextFixes": s.next_fixes} for s in STAGES.values()]


def document(plan: Plan, names: Names) -> dict:
    return {
        "stage": plan.number,
        "stageName": plan.name,
        "instance": names.instance,
        "components": [
            {"name": c.name, "kind": c.kind, "replicas": c.replicas,
             "selector": selector(names, c.name)}
            for c in components(plan)
        ],
        "spofs": plan.spofs,
        "flows": flows(plan),
        "lessons": lessons(),
    }


def build(plan: Plan, names: Names) -> list[Manifest]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(names, names.architecture, COMPONENT),
            # compact and key-sorted: the same plan gives the same bytes (no write at idle)
            "data": {KEY: json.dumps(document(plan, names), sort_keys=True,
                                     separators=(",", ":"))},
        }
    ]
