"""Server-side apply of a ScaleStage's children under one field manager, and pruning by labels.

The deciding parts are pure (`owned`, `needs_apply`, `to_prune`, `taken`); `Cluster` is the only
thing here that talks to the API server, through the kubernetes DynamicClient (dicts in and out),
and it counts its own write calls. An unchanged child is not applied again: an idle reconcile makes
no write call at all.

A child's name may already be held by an object this ScaleStage does not control (another
ScaleStage's child: `chirp-web` is the front door of a ScaleStage `chirp-web` and the web Service of
one named `chirp`; or something a person made). Server-side apply under our one field manager would
take it over, so such a name is never written: the pass stops and says so (`names_taken`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.discovery import LazyDiscoverer
from kubernetes.dynamic.exceptions import NotFoundError
from kubernetes.dynamic.resource import Resource
from kubernetes.utils.quantity import parse_quantity

from .moves import last_json_line
from .names import API_VERSION, APPLIED_HASH, ARCHITECTURE_SEEN, GROUP, HOLDS_DATA, MANAGED_BY

FIELD_MANAGER = MANAGED_BY
SCALESTAGE = "ScaleStage"

# Every kind a builder may produce (kind: apiVersion), in apply order: what pods refer to exists
# before the pods. `sync` prunes in the reverse order.
KINDS: dict[str, str] = {
    "Secret": "v1",
    "ConfigMap": "v1",
    # the architecture page's read-only access (specs/access.py), before the pods that use it
    "ServiceAccount": "v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    # The paths between pods (specs/network.py): a new path is open before the Services and the
    # pods that use it. A path no longer wanted is pruned after the workloads (reverse order), so
    # it never closes before its pods are told to go; one that pods which stay still use while
    # they roll is kept by the plan itself (reconcile.keeps_redis, network.move until DONE).
    "NetworkPolicy": "networking.k8s.io/v1",
    "Service": "v1",
    "StatefulSet": "apps/v1",
    "Deployment": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "Job": "batch/v1",  # a data move's steps (specs/jobs.py)
}
WORKLOAD_KINDS = ("StatefulSet", "Deployment")
# A list answered with each object's metadata only: all a name check needs, and never the data
# of Secrets that are not ours.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

# (namespace, Job name) -> the log of the Job's newest pod, or None when it has none yet
LogReader = Callable[[str, str], "str | None"]


def key(obj: Mapping) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


# --- pure decisions ---------------------------------------------------------------------------


def fingerprint(manifest: Mapping) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:20]


def owned(manifest: Mapping, owner: Mapping) -> dict[str, Any]:
    """The manifest as applied: namespaced, owned by the ScaleStage (deleting it deletes this),
    and stamped with the hash of what we asked for (so a field we stop setting is noticed)."""
    out = copy.deepcopy(dict(manifest))  # builders' output stays untouched
    out["metadata"]["namespace"] = owner["metadata"]["namespace"]
    kopf.append_owner_reference(out, owner=owner)  # controller, blockOwnerDeletion
    out["metadata"].setdefault("annotations", {})[APPLIED_HASH] = fingerprint(out)
    return out


def same_value(want: Any, have: Any) -> bool:
    """`want` is contained in `have`: server-added fields and defaults are ignored, and quantities
    compare by value (the server may write 0.5 back as 500m)."""
    if isinstance(want, Mapping):
        if not want:
            return not have  # `{}` asked, nothing stored: the same
        return isinstance(have, Mapping) and all(
            same_value(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        if not want:
            return not have
        return (isinstance(have, list) and len(want) == len(have)
                and all(same_value(w, h) for w, h in zip(want, have, strict=True)))
    if want == have:
        return True
    if isinstance(want, str) and isinstance(have, str):
        try:
            return parse_quantity(want) == parse_quantity(have)
        except ValueError:
            return False
    return False


def applied_hash(obj: Mapping) -> str | None:
    """The hash `owned` stamped on an object when we last applied it."""
    return (obj["metadata"].get("annotations") or {}).get(APPLIED_HASH)


def needs_apply(desired: Mapping, observed: Mapping | None) -> bool:
    """Apply when the child is missing, what we ask for changed, or someone edited our fields."""
    if observed is None:
        return True
    if applied_hash(observed) != applied_hash(desired):
        return True
    return not same_value(desired, observed)


def document_version(configmap: Mapping | None) -> str | None:
    """The version of a mounted ConfigMap as applied (its applied hash); None if absent."""
    return None if configmap is None else applied_hash(configmap)


def pods_to_refresh(pods: Iterable[Mapping], version: str) -> list[str]:
    """The running pods not yet told about this version of the document they mount.

    The kubelet rewrites a mounted ConfigMap's files on its periodic pass (up to about a minute
    after the change) or as soon as it syncs the pod, which any change to the pod makes it do: a
    web pod kept from stage 2 to 3 otherwise went on reading from the primary as stage 2 for
    ~50 s after the ScaleStage said Ready. Touching the pod's annotations is that change."""
    return sorted(
        pod["metadata"]["name"] for pod in pods
        if pod["metadata"].get("deletionTimestamp") is None
        and (pod["metadata"].get("annotations") or {}).get(ARCHITECTURE_SEEN) != version)


def refresh_patch(version: str) -> dict:
    return {"metadata": {"annotations": {ARCHITECTURE_SEEN: version}}}


def is_workload(obj: Mapping) -> bool:
    return obj["kind"] in WORKLOAD_KINDS


def holds_data(obj: Mapping) -> bool:
    """A workload whose volumes are the only copy of data (the monolith, a primary)."""
    return (obj["metadata"].get("labels") or {}).get(HOLDS_DATA) == "true"


def to_prune(observed: Iterable[Mapping], desired_keys: set[tuple[str, str]]) -> list[Mapping]:
    """Observed children no builder asked for. Never a workload whose volumes hold the only copy
    of data: that one goes only with a migration (or with the whole ScaleStage)."""
    return [
        obj for obj in observed
        if key(obj) not in desired_keys
        and not holds_data(obj)
    ]


def owner_of(obj: Mapping) -> str | None:
    """Name of the ScaleStage that controls this child, if one does."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if (ref.get("kind") == SCALESTAGE and ref.get("apiVersion", "").startswith(f"{GROUP}/")
                and ref.get("controller")):
            return ref.get("name")
    return None


def namespace_terminating(error: ApiException) -> bool:
    """The API server refused a create because the namespace is being deleted (a race between
    the namespace controller and a reconcile that restores what it has just removed)."""
    return error.status == 403 and "because it is being terminated" in str(error.body or "")


def is_owned_by(obj: Mapping, owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or [])


def controller(obj: Mapping) -> Mapping | None:
    """The owner reference that controls this object, if one does."""
    return next((ref for ref in obj["metadata"].get("ownerReferences") or []
                 if ref.get("controller")), None)


@dataclass(frozen=True)
class Taken:
    """A child's name held by an object this ScaleStage does not control."""

    kind: str
    name: str
    holder: str  # who controls it, for people: "ScaleStage chirp (uid …)", or "no one"

    @property
    def child(self) -> str:
        return f"{self.kind}/{self.name}"


def unclaimed(desired: Iterable[Mapping], observed: Mapping[tuple[str, str], Mapping]
              ) -> dict[str, set[str]]:
    """Names (by kind) of the children we want that are not among ours: the only ones another
    object can hold. Empty once every child exists, so a steady pass reads nothing more."""
    out: dict[str, set[str]] = {}
    for manifest in desired:
        if key(manifest) not in observed:
            out.setdefault(manifest["kind"], set()).add(manifest["metadata"]["name"])
    return out


def taken(wanted: Mapping[str, set[str]], existing: Mapping[str, Iterable[Mapping]],
          owner_uid: str) -> list[Taken]:
    """The wanted names that exist already under another controller, or under none. An object
    this ScaleStage controls is ours whatever its labels say (a hand edit is undone by the apply).
    """
    out = []
    for kind, names in wanted.items():
        for obj in existing.get(kind, ()):
            name = obj["metadata"]["name"]
            ref = controller(obj)
            if name not in names or (ref is not None and ref.get("uid") == owner_uid):
                continue
            holder = (f"{ref.get('kind')} {ref.get('name')}" if ref is not None
                      else "no one")
            if ref is not None and ref.get("kind") == SCALESTAGE:
                holder += f" (uid {ref.get('uid')})"  # tells an earlier one of our name apart
            out.append(Taken(kind, name, holder))
    return sorted(out, key=lambda t: (t.kind, t.name))


# --- the API server ---------------------------------------------------------------------------


class MemoryDiscoverer(LazyDiscoverer):
    """The client's API discovery, kept in memory. By default it caches to a file in the temp
    directory, which a pod with a read-only root filesystem does not have (tempfile raises)."""

    NOWHERE = "/dev/null/discovery.json"  # cannot exist: nothing is ever read from it

    def __init__(self, client: DynamicClient, cache_file: str | None = None):
        super().__init__(client, self.NOWHERE)

    def _write_cache(self) -> None:
        pass


def discover(api: ApiClient) -> dict[str, Resource]:
    """The API resources of the ScaleStage and of every child kind, by kind (one DynamicClient
    behind them all). Discovery is reads only, done once when the operator starts: reconciles
    never wait on it, and threads never share its lazy loading."""
    dynamic = DynamicClient(api, discoverer=MemoryDiscoverer)
    kinds = {**KINDS, SCALESTAGE: API_VERSION, "Pod": "v1"}  # pods: pods_to_refresh
    return {kind: dynamic.resources.get(api_version=api_version, kind=kind)
            for kind, api_version in kinds.items()}


def pod_log_reader(api: ApiClient, tail_lines: int = 20) -> LogReader:
    """Reads the end of a Job's newest pod's log (a data move reports its progress there)."""
    core = CoreV1Api(api)

    def read(namespace: str, job: str) -> str | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        if not pods:
            return None
        newest = max(pods, key=lambda pod: pod.metadata.creation_timestamp)
        try:
            return core.read_namespaced_pod_log(newest.metadata.name, namespace,
                                                tail_lines=tail_lines)
        except ApiException as error:  # e.g. its container not started yet
            if error.status in (400, 404):
                return None
            raise

    return read


class Cluster:
    """Calls to the API server for one reconcile; `writes` counts every call that may change
    state (the operator logs it; the operator tier checks it against the audit log)."""

    def __init__(self, resources: Mapping[str, Resource], logs: LogReader | None = None):
        self.resources = resources
        self.logs = logs
        self.writes = 0

    def last_log_line(self, namespace: str, job: str) -> dict | None:
        """The last JSON line a move Job printed (its progress), None when there is none."""
        log = self.logs(namespace, job) if self.logs else None
        return last_json_line(log or "")

    def get_scalestage(self, namespace: str, name: str) -> dict | None:
        try:
            return self.resources[SCALESTAGE].get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, kind: str, namespace: str, selector: str) -> list[dict]:
        """Objects of one kind; each item carries its kind and apiVersion (the client adds them)."""
        found = self.resources[kind].get(namespace=namespace, label_selector=selector)
        return found.to_dict()["items"]

    def list_metadata(self, kind: str, namespace: str) -> list[dict]:
        """The metadata of every object of one kind in the namespace, whoever made it."""
        found = self.resources[kind].get(namespace=namespace,
                                         header_params={"Accept": METADATA_ONLY})
        return found.to_dict()["items"]

    def apply(self, manifest: Mapping) -> None:
        self.writes += 1
        self.resources[manifest["kind"]].server_side_apply(
            body=manifest, field_manager=FIELD_MANAGER, force_conflicts=True)

    def patch_pod(self, namespace: str, name: str, patch: Mapping) -> None:
        self.writes += 1
        try:
            self.resources["Pod"].patch(body=patch, name=name, namespace=namespace,
                                        content_type="application/merge-patch+json")
        except NotFoundError:
            pass  # gone meanwhile: nothing to refresh

    def delete(self, obj: Mapping) -> None:
        self.writes += 1
        try:
            self.resources[obj["kind"]].delete(
                name=obj["metadata"]["name"], namespace=obj["metadata"]["namespace"],
                propagation_policy="Background")
        except NotFoundError:
            pass

    def patch_status(self, owner: Mapping, status: Mapping) -> None:
        self.writes += 1
        meta = owner["metadata"]
        self.resources[SCALESTAGE].status.patch(
            body={"status": status}, name=meta["name"], namespace=meta["namespace"],
            content_type="application/merge-patch+json")


def observe(cluster: Cluster, namespace: str, selector: str,
            owner_uid: str) -> dict[tuple[str, str], dict]:
    """Every child of one ScaleStage that exists now, by (kind, name)."""
    return {
        key(obj): obj
        for kind in KINDS
        for obj in cluster.list(kind, namespace, selector)
        if is_owned_by(obj, owner_uid)
    }


def names_taken(cluster: Cluster, desired: Iterable[Mapping],
                observed: Mapping[tuple[str, str], Mapping], owner: Mapping) -> list[Taken]:
    """The children's names someone else holds. Reads one list (metadata only) per kind that has
    a child still to create, none when every child exists (`observe` has already found them)."""
    wanted = unclaimed(desired, observed)
    meta = owner["metadata"]
    existing = {kind: cluster.list_metadata(kind, meta["namespace"]) for kind in wanted}
    return taken(wanted, existing, meta["uid"])


def sync(cluster: Cluster, desired: list[Mapping], observed: Mapping[tuple[str, str], Mapping],
         owner: Mapping) -> tuple[list[str], list[str]]:
    """Apply what differs, prune what is no longer wanted; (applied, pruned) as Kind/name."""
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
