"""Small pieces every builder shares: object metadata, non-root security contexts, env helpers."""

from __future__ import annotations

from typing import Any

from ..names import Names

Manifest = dict[str, Any]


def metadata(names: Names, name: str, component: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "labels": names.labels(component, **labels)}


def pod_security(uid: int) -> dict[str, Any]:
    """Pod-level: run as a fixed non-root uid; fsGroup makes volumes writable for it."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def spread(selector: dict[str, str]) -> list[dict[str, Any]]:
    """Pods of one component over as many nodes as possible, so one node lost is not all of them.
    Soft (ScheduleAnyway): a one-node cluster still runs every replica."""
    return [{
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": dict(selector)},
    }]


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def env(name: str, value: str | int) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def env_from_secret(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def env_from_field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def service(
    names: Names,
    name: str,
    component: str,
    selector: dict[str, str],
    port: int,
    target_port: int,
    *,
    sticky: bool = False,
    headless: bool = False,
    labels: dict[str, str] | None = None,
) -> Manifest:
    spec: dict[str, Any] = {
        "selector": selector,
        "ports": [{"name": "main", "port": port, "targetPort": target_port, "protocol": "TCP"}],
        # Always explicit: dropping the field on 3→4 must switch affinity off, not leave it behind.
        "sessionAffinity": "ClientIP" if sticky else "None",
    }
    if headless:
        spec["clusterIP"] = "None"
        # Replicas must find the primary's pod address before it reports ready.
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(names, name, component, **(labels or {})),
        "spec": spec,
    }
