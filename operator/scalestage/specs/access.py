"""What the pods that serve the architecture page may read of the cluster: a ServiceAccount, a
namespaced Role and its RoleBinding (docs/architecture-page.md).

Read-only and narrow on purpose: the page lists this namespace's pods (Ready, restarts, which one
went), reads its own ScaleStage (stage, phase) and the architecture ConfigMap straight from the
API (the mounted copy follows when the kubelet syncs the pod), nothing else. No Secret, no write.
The web pods (the monolith at stage 1) run as this account; every other pod keeps the
namespace's default one.
"""

from __future__ import annotations

from ..names import GROUP, PLURAL, Names
from ..stages import Plan
from .common import Manifest, metadata

COMPONENT = "architecture"
RBAC = "rbac.authorization.k8s.io"


def account(names: Names) -> str:
    """The ServiceAccount (and Role, RoleBinding) name."""
    return names.of("architecture-reader")


def rules(names: Names) -> list[dict]:
    return [
        # every pod of the namespace: the page selects this instance's by label (a list cannot be
        # limited by name)
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [GROUP], "resources": [PLURAL], "resourceNames": [names.instance],
         "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [names.architecture],
         "verbs": ["get"]},
    ]


def pod_fields(names: Names) -> dict:
    """Pod spec fields of the pods that serve the page: they run as the reader and get its token
    (projected, short-lived, refreshed by the kubelet)."""
    return {"serviceAccountName": account(names), "automountServiceAccountToken": True}


def build(plan: Plan, names: Names) -> list[Manifest]:
    name = account(names)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": metadata(names, name, COMPONENT),
         # only the pods that name it get a token (pod_fields)
         "automountServiceAccountToken": False},
        {"apiVersion": f"{RBAC}/v1", "kind": "Role",
         "metadata": metadata(names, name, COMPONENT), "rules": rules(names)},
        {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
         "metadata": metadata(names, name, COMPONENT),
         "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
         # no subject namespace: builders know none, and RBAC reads a ServiceAccount subject of
         # a RoleBinding without one as in the binding's own namespace
         "subjects": [{"kind": "ServiceAccount", "name": name}]},
    ]
