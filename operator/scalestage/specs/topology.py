"""The topology ConfigMap: what the architecture page draws (CHIRP_TOPOLOGY in docs/contracts.md)."""

from __future__ import annotations

import json

from ..names import Names
from ..stages import Plan, components
from .common import Manifest, metadata

KEY = "topology.json"


def document(plan: Plan) -> dict:
    return {
        "stage": plan.number,
        "stageName": plan.name,
        "components": [
            {"name": c.name, "kind": c.kind, "replicas": c.replicas} for c in components(plan)
        ],
        "spofs": plan.spofs,
    }


def build(plan: Plan, names: Names) -> list[Manifest]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(names, names.topology, "topology"),
            "data": {KEY: json.dumps(document(plan), sort_keys=True, separators=(",", ":"))},
        }
    ]
