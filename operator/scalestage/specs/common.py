"""Small pieces every builder shares: object metadata, the workload and container skeletons (with
the restricted Pod Security Standard's security contexts), env helpers and the config file
templates."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

from ..names import Names

Manifest = dict[str, Any]

# Config files (scripts, nginx.conf) are package data in scalestage/templates/, with `@NAME@`
# placeholders: neither shell nor nginx syntax uses that form, so the files stay plain to read.
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def metadata(names: Names, name: str, component: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "labels": names.labels(component, **labels)}


def pod_security(uid: int | None, fs_group: int | None = None) -> dict[str, Any]:
    """Pod level of the restricted Pod Security Standard: non-root, the runtime's default seccomp
    profile. `uid` is the image's numeric user (and group; runAsNonRoot alone fails when an image
    names its user by name); without it every container sets its own. `fs_group` (default `uid`)
    makes the volumes writable for it."""
    out: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if uid is not None:
        out |= {"runAsUser": uid, "runAsGroup": uid}
    if fs_group is None:
        fs_group = uid
    if fs_group is not None:
        out["fsGroup"] = fs_group
    return out


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
    """Container level of the restricted Pod Security Standard (init containers too)."""
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
    node_port: int | None = None,
    labels: dict[str, str] | None = None,
) -> Manifest:
    main_port: dict[str, Any] = {"name": "main", "port": port, "targetPort": target_port,
                                 "protocol": "TCP"}
    if node_port is not None:
        main_port["nodePort"] = node_port
    spec: dict[str, Any] = {
        # Type and affinity always explicit: dropping an option must switch it off, not leave the
        # old value behind (e.g. affinity on 3→4, a node port removed from the spec).
        "type": "NodePort" if node_port is not None else "ClusterIP",
        "selector": selector,
        "ports": [main_port],
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


def workload(
    kind: str,
    names: Names,
    component: str,
    replicas: int,
    pod: dict[str, Any],
    *,
    run_as: int | None,
    fs_group: int | None = None,
    name: str | None = None,
    labels: Mapping[str, str] | None = None,
    selector: dict[str, str] | None = None,
    pod_annotations: dict[str, str] | None = None,
    volume_claims: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> Manifest:
    """An apps/v1 Deployment or StatefulSet `<instance>-<component>` (or `name`) running `pod`.

    Every pod meets the restricted Pod Security Standard, set here once for all builders: the
    pod's securityContext is pod_security(run_as, fs_group) (a builder sets none of its own), and
    every container, init containers too, gets container_security() over its own fields.

    `labels` go on the object and its pods; the selector defaults to the component's (selectors are
    immutable, so they never include labels that may change). Extra keyword arguments are spec
    fields (strategy, serviceName, podManagementPolicy). A StatefulSet's `volume_claims` are deleted
    with its pods (scaled down) or with it (deleted).
    """
    if "securityContext" in pod:
        raise ValueError("workload() sets the pod's securityContext: pass run_as / fs_group")
    pod = {"securityContext": pod_security(run_as, fs_group), **pod}
    for key in ("initContainers", "containers"):
        if key in pod:
            pod[key] = [restricted(c) for c in pod[key]]
    labels = dict(labels or {})
    template: dict[str, Any] = {"labels": names.labels(component, **labels)}
    if pod_annotations:
        template["annotations"] = pod_annotations
    out: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": selector or names.selector(component)},
        **spec,
        "template": {"metadata": template, "spec": pod},
    }
    if volume_claims:
        out["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete",
                                                       "whenScaled": "Delete"}
        out["volumeClaimTemplates"] = volume_claims
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": metadata(names, name or names.of(component), component, **labels),
        "spec": out,
    }


def container(
    name: str,
    image: str,
    resources: Mapping[str, Any],
    *,
    command: list[str] | None = None,
    args: list[str] | None = None,
    env: list[dict[str, Any]] | None = None,
    ports: Mapping[str, int] | None = None,
    mounts: Mapping[str, str] | None = None,
    read_only: tuple[str, ...] = (),
    **fields: Any,
) -> dict[str, Any]:
    """A container without privileges: `ports` {name: port}, `mounts` {volume: path} (`read_only`
    lists the volumes mounted read-only); extra keyword arguments are container fields
    (readinessProbe, lifecycle, ...)."""
    out: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if command is not None:
        out["command"] = command
    if args is not None:
        out["args"] = args
    if env is not None:
        out["env"] = env
    if ports:
        out["ports"] = [{"name": port_name, "containerPort": port, "protocol": "TCP"}
                        for port_name, port in ports.items()]
    out.update(fields)
    out["resources"] = dict(resources)
    out["securityContext"] = container_security()
    if mounts:
        out["volumeMounts"] = [mount(volume, path, volume in read_only)
                               for volume, path in mounts.items()]
    return out


def restricted(container: dict[str, Any]) -> dict[str, Any]:
    """The container with the restricted standard's fields over its own securityContext (which
    may add its user, e.g. the monolith's two programs)."""
    return {**container,
            "securityContext": {**container.get("securityContext", {}), **container_security()}}


def mount(volume: str, path: str, read_only: bool = False) -> dict[str, Any]:
    return {"name": volume, "mountPath": path, **({"readOnly": True} if read_only else {})}


def render(template: str, **values: str | int) -> str:
    """The package data file `templates/<template>` with each `@NAME@` replaced by values[NAME].
    A placeholder without a value, or a value without a placeholder, is an error: a typo must fail
    the unit tests, not reach a pod."""
    text = template_text(template)
    wanted = set(PLACEHOLDER.findall(text))
    if wanted != set(values):
        raise ValueError(f"{template}: placeholders {sorted(wanted)}, values {sorted(values)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


@functools.cache
def template_text(template: str) -> str:
    return (files("scalestage") / "templates" / template).read_text(encoding="utf-8")
