"""Server-side apply of a ScaleStage's children under one field manager, and pruning by labels.

The deciding parts are pure (`needs_apply`, `to_prune`, `owned`); `Cluster` is the only thing here
that talks to the API server, with JSON dicts in and out, and it counts its own write calls.
An unchanged child is not applied again: an idle reconcile makes no write call at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.quantity import parse_quantity

from .names import APPLIED_HASH, GROUP, HOLDS_DATA, MANAGED_BY

FIELD_MANAGER = MANAGED_BY
VERSION = "v1alpha1"
PLURAL = "scalestages"


@dataclass(frozen=True)
class Kind:
    api_version: str
    plural: str

    def path(self, namespace: str, name: str | None = None) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        base = f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{name}" if name else base


# Every kind a builder may produce, in apply order: what pods refer to exists before the pods.
KINDS: dict[str, Kind] = {
    "Secret": Kind("v1", "secrets"),
    "ConfigMap": Kind("v1", "configmaps"),
    "Service": Kind("v1", "services"),
    "StatefulSet": Kind("apps/v1", "statefulsets"),
    "Deployment": Kind("apps/v1", "deployments"),
    "PodDisruptionBudget": Kind("policy/v1", "poddisruptionbudgets"),
}
SCALESTAGE = Kind(f"{GROUP}/{VERSION}", PLURAL)
EVENTS = Kind("v1", "events")


def key(obj: Mapping) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


# --- pure decisions ---------------------------------------------------------------------------


def fingerprint(manifest: Mapping) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:20]


def owned(manifest: Mapping, owner: Mapping) -> dict[str, Any]:
    """The manifest as applied: namespaced, owned by the ScaleStage (deleting it deletes this),
    and stamped with the hash of what we asked for (so a field we stop setting is noticed)."""
    meta = owner["metadata"]
    out = json.loads(json.dumps(manifest))  # deep copy; builders' output stays untouched
    out["metadata"]["namespace"] = meta["namespace"]
    out["metadata"]["ownerReferences"] = [{
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ScaleStage", "name": meta["name"],
        "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
    }]
    out["metadata"].setdefault("annotations", {})[APPLIED_HASH] = fingerprint(out)
    return out


def same_value(want: Any, have: Any) -> bool:
    """`want` is contained in `have`: server-added fields and defaults are ignored, and quantities
    compare by value (the server may write 0.5 back as 500m)."""
    if isinstance(want, Mapping):
        if not want:
            return not have  # `{}` asked, nothing stored: the same
        return isinstance(have, Mapping) and all(same_value(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        if not want:
            return not have
        return (isinstance(have, list) and len(want) == len(have)
                and all(same_value(w, h) for w, h in zip(want, have)))
    if want == have:
        return True
    if isinstance(want, str) and isinstance(have, str):
        try:
            return parse_quantity(want) == parse_quantity(have)
        except ValueError:
            return False
    return False


def needs_apply(desired: Mapping, observed: Mapping | None) -> bool:
    """Apply when the child is missing, what we ask for changed, or someone edited our fields."""
    if observed is None:
        return True
    stamped = (observed["metadata"].get("annotations") or {}).get(APPLIED_HASH)
    if stamped != desired["metadata"]["annotations"][APPLIED_HASH]:
        return True
    return not same_value(desired, observed)


def to_prune(observed: Iterable[Mapping], desired_keys: set[tuple[str, str]]) -> list[Mapping]:
    """Observed children no builder asked for. Never a workload whose volumes hold the only copy
    of data: that one goes only with a migration (or with the whole ScaleStage)."""
    return [
        obj for obj in observed
        if key(obj) not in desired_keys
        and (obj["metadata"].get("labels") or {}).get(HOLDS_DATA) != "true"
    ]


def owner_of(obj: Mapping) -> str | None:
    """Name of the ScaleStage that controls this child, if one does."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "ScaleStage" and ref.get("apiVersion", "").startswith(f"{GROUP}/") \
                and ref.get("controller"):
            return ref.get("name")
    return None


def namespace_terminating(error: ApiException) -> bool:
    """The API server refused a create because the namespace is being deleted (a race between
    the namespace controller and a reconcile that restores what it has just removed)."""
    return error.status == 403 and "because it is being terminated" in str(error.body or "")


def is_owned_by(obj: Mapping, owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or [])


# --- the API server ---------------------------------------------------------------------------


class Cluster:
    """JSON-in, JSON-out calls to the API server; `writes` counts every call that may change state."""

    def __init__(self, api: ApiClient):
        self.api = api
        self.writes = 0

    def _call(self, method: str, path: str, *, query=None, body=None,
              content_type: str = "application/json") -> dict:
        if method != "GET":
            self.writes += 1
        request = self.api.param_serialize(
            method, path, query_params=query or [], body=body,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(
                http_resp=response, body=(response.data or b"").decode(errors="replace"), data=None)
        return json.loads(response.data or b"{}")

    def get(self, kind: Kind, namespace: str, name: str) -> dict | None:
        try:
            return self._call("GET", kind.path(namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list(self, kind: Kind, namespace: str, selector: str) -> list[dict]:
        found = self._call("GET", kind.path(namespace), query=[("labelSelector", selector)])
        return found.get("items") or []

    def apply(self, manifest: Mapping) -> dict:
        kind = KINDS[manifest["kind"]]
        return self._call(
            "PATCH", kind.path(manifest["metadata"]["namespace"], manifest["metadata"]["name"]),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=json.dumps(manifest), content_type="application/apply-patch+yaml",
        )

    def delete(self, obj: Mapping) -> None:
        kind = KINDS[obj["kind"]]
        try:
            self._call("DELETE", kind.path(obj["metadata"]["namespace"], obj["metadata"]["name"]),
                       body={"propagationPolicy": "Background"})
        except ApiException as error:
            if error.status != 404:
                raise

    def patch_status(self, owner: Mapping, status: Mapping) -> dict:
        meta = owner["metadata"]
        path = SCALESTAGE.path(meta["namespace"], meta["name"]) + "/status"
        return self._call("PATCH", path, body={"status": status},
                          content_type="application/merge-patch+json")

    def event(self, owner: Mapping, reason: str, message: str, type_: str = "Normal") -> None:
        meta = owner["metadata"]
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._call("POST", EVENTS.path(meta["namespace"]),
                   body={
                       "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                       "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScaleStage",
                                          "name": meta["name"], "namespace": meta["namespace"],
                                          "uid": meta["uid"]},
                       "reason": reason, "message": message, "type": type_,
                       "source": {"component": FIELD_MANAGER},
                       "reportingComponent": FIELD_MANAGER, "reportingInstance": FIELD_MANAGER,
                       "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                   })


def observe(cluster: Cluster, namespace: str, selector: str, owner_uid: str) -> dict[tuple[str, str], dict]:
    """Every child of one ScaleStage that exists now, by (kind, name)."""
    out = {}
    for kind_name, kind in KINDS.items():
        for obj in cluster.list(kind, namespace, selector):
            if is_owned_by(obj, owner_uid):
                obj["kind"], obj["apiVersion"] = kind_name, kind.api_version  # lists omit them
                out[key(obj)] = obj
    return out


def sync(cluster: Cluster, desired: list[Mapping], observed: Mapping[tuple[str, str], Mapping],
         owner: Mapping) -> tuple[list[str], list[str]]:
    """Apply what differs, prune what is no longer wanted; returns (applied, pruned) as Kind/name."""
    applied, pruned = [], []
    wanted = [owned(m, owner) for m in desired]
    for manifest in wanted:
        if needs_apply(manifest, observed.get(key(manifest))):
            cluster.apply(manifest)
            applied.append("/".join(key(manifest)))
    for obj in reversed(to_prune(observed.values(), {key(m) for m in wanted})):
        cluster.delete(obj)
        pruned.append("/".join(key(obj)))
    return applied, pruned
