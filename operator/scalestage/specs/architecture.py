"""The architecture ConfigMap: what Chirp's architecture page draws (CHIRP_ARCHITECTURE in
docs/contracts.md), derived from the resolved plan only."""

from __future__ import annotations

import json

from ..names import Names
from ..stages import Plan, components
from .common import Manifest, metadata

COMPONENT = "architecture"
KEY = "architecture.json"
ENV = "CHIRP_ARCHITECTURE"  # every Chirp container reads the document from this variable


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
            "metadata": metadata(names, names.architecture, COMPONENT),
            # compact and key-sorted: the same plan gives the same bytes (no write at idle)
            "data": {KEY: json.dumps(document(plan), sort_keys=True, separators=(",", ":"))},
        }
    ]
