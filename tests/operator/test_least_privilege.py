"""Least privilege, measured: the operator runs under exactly what the chart grants (its
ServiceAccount's token; the namespaced Role mode and the ClusterRole mode), walks the stages the
operator tier can reach without a kubelet, and the API server's audit log says which verbs on which
resources that account used. Every grant is used or explained below; nothing used is refused.

A control plane of this module's own (tests/operator/own_plane.py): its audit log records every
request (reads too) of the accounts in RELEASE_NAMESPACE, and no other operator runs beside ours.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.fixtures.controlplane import AUDIT_POLICY as WRITES_ONLY
from tests.operator.expected_children import EXPECTED_CHILDREN as EXPECTED
from tests.operator.expected_children import INSTANCE
from tests.operator.own_plane import (  # noqa: F401  (fixtures: this module's own plane)
    own_api,
    own_control_plane,
    own_crd,
    own_deleted_namespaces,
    own_kube,
)
from tests.polling import WaitTimeout, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "scalestage-operator"
HELM = REPO / ".tools" / "bin" / "helm"
RELEASE = "scalestage-operator"
RELEASE_NAMESPACE = "scalestage-system"  # where the chart's ServiceAccount lives
AUDIT_POLICY = {  # read by own_plane: every request of the operator's account, then as usual
    **WRITES_ONLY,
    "rules": [{"level": "Metadata", "userGroups": [f"system:serviceaccounts:{RELEASE_NAMESPACE}"]},
              *WRITES_ONLY["rules"]],
}

# Granted but never used by the walk below, and why each is still needed. (group, resource, verb)
ALLOWED_UNUSED = {
    # Setting blockOwnerDeletion on a child's owner reference needs `update` on the owner's
    # finalizers where the OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift);
    # it is an admission check, never a request of its own.
    ("scalestage.dev", "scalestages/finalizers", "update"),
    # The architecture reader's Role (specs/access.py) grants `get` on the architecture
    # ConfigMap; RBAC lets an account grant only what it holds itself (also an admission check).
    ("", "configmaps", "get"),
    # Pruned only when a stage is left whose web pods have rolled: 4 → 3 retires Redis (its
    # Deployment and Service) once the new web pods are ready, 5 → 4 the edge's ConfigMap and the
    # workers; 1 ↔ 2 and 4 ↔ 5 are data moves that wait for ready pods. No kubelet here.
    ("", "services", "delete"),
    ("", "configmaps", "delete"),
    ("apps", "deployments", "delete"),
    # A data move's steps are Jobs (specs/jobs.py), created once the target's databases are
    # ready, pruned when the move is done; their pods' logs carry the progress. Needs a kubelet.
    # (Pods are listed and patched by the walk's 3 → 2: the web pods told of the new document.)
    ("batch", "jobs", "create"),
    ("batch", "jobs", "patch"),
    ("batch", "jobs", "delete"),
    ("", "pods/log", "get"),
}

helm_path = str(HELM) if HELM.exists() else shutil.which("helm")


def render(*sets: str) -> list[dict]:
    out = subprocess.run([helm_path, "template", RELEASE, str(CHART), "--namespace",
                          RELEASE_NAMESPACE, *[a for s in sets for a in ("--set", s)]],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def granted(role: dict) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every rule of a Role or ClusterRole."""
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def requests_of(control_plane, username: str) -> list[dict]:
    return [e for e in control_plane.audit_events() if e["user"]["username"] == username]


def used(events: list[dict]) -> set[tuple[str, str, str]]:
    """(group, resource[/subresource], verb) of every request. A server-side apply that created
    its object (201) needed `create` as well as `patch`: the API server checks it inside the
    PATCH request, so it never shows as a verb of its own."""
    found = set()
    for event in events:
        ref = event.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # discovery (/api, /apis): open to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        found.add((ref.get("apiGroup", ""), resource, event["verb"]))
        if event["verb"] == "patch" and (event.get("responseStatus") or {}).get("code") == 201:
            found.add((ref.get("apiGroup", ""), resource, "create"))
    return found


def refused(events: list[dict]) -> list[str]:
    return [f"{e['verb']} {e['requestURI']}: {e['responseStatus'].get('message')}"
            for e in events if (e.get("responseStatus") or {}).get("code") == 403]


def named(instance: str, children: set[str]) -> set[str]:
    return {child.replace(f"/{INSTANCE}", f"/{instance}", 1) for child in children}


def operator_token_kubeconfig(control_plane, api, account: str, path: Path) -> Path:
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, RELEASE_NAMESPACE, {"spec": {"expirationSeconds": 3600}}).status.token
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "operator"
    path.write_text(yaml.safe_dump(config))
    return path


def walk(kube, namespace):
    """What the operator tier can make the operator do without a kubelet: create every stage,
    go 3 → 2 in place (prunes the replicas and their budgets), restore a deleted child, and
    delete a ScaleStage (its children go with it)."""
    for stage in EXPECTED:
        kube.create(namespace, f"s{stage}", {"stage": stage})
    for stage, children in EXPECTED.items():
        wait_until(lambda stage=stage, children=children: kube.children(namespace, f"s{stage}")
                   == named(f"s{stage}", children), timeout=60, what=f"stage {stage} children")
        wait_until(lambda stage=stage: (kube.get(namespace, f"s{stage}").get("status") or {})
                   .get("stage") == stage, what=f"stage {stage} status")
    kube.patch_spec(namespace, "s3", {"stage": 2})
    wait_until(lambda: kube.children(namespace, "s3") == named("s3", EXPECTED[2]), timeout=60,
               what="3 → 2 in place")
    kube.delete_child("Service", namespace, "s4-web")
    wait_until(lambda: "Service/s4-web" in kube.children(namespace, "s4"), timeout=30,
               what="a deleted child restored")
    kube.delete(namespace, "s1")
    wait_until(lambda: kube.get(namespace, "s1") is None and not kube.children(namespace, "s1"),
               timeout=60, what="a ScaleStage deleted with its children")


@pytest.fixture(scope="module")
def release_namespace(api, crd):
    client.CoreV1Api(api).create_namespace({"metadata": {"name": RELEASE_NAMESPACE}})
    return RELEASE_NAMESPACE


@pytest.mark.skipif(not helm_path, reason="helm not built yet (make tools)")
@pytest.mark.parametrize("mode", ["Role", "ClusterRole"])
def test_every_grant_is_used_or_explained_and_nothing_is_refused(
        mode, control_plane, api, crd, kube, release_namespace, start_operator, namespace,
        deleted_namespaces, tmp_path):
    # An operator of every namespace would find the earlier test's ScaleStages still going with
    # their namespace (and be refused restoring children there): only this test's are left.
    deleted_namespaces.wait_gone()
    docs = render(*([f"watchNamespace={namespace}"] if mode == "Role" else []))
    [role] = [d for d in docs if d["kind"] == mode]
    [binding] = [d for d in docs if d["kind"] == f"{mode}Binding"]
    [account] = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [account, role, binding]}))
    try:
        kubeconfig = operator_token_kubeconfig(control_plane, api, account["metadata"]["name"],
                                               tmp_path / "operator.kubeconfig")
        username = f"system:serviceaccount:{RELEASE_NAMESPACE}:{account['metadata']['name']}"
        mark = len(requests_of(control_plane, username))
        # Run as the chart's Deployment would: scope from its args, rights from its role only.
        operator = start_operator(kubeconfig, *(
            [f"--namespace={namespace}"] if mode == "Role" else ["--all-namespaces"]))
        try:
            walk(kube, namespace)
        except WaitTimeout as error:
            raise WaitTimeout(f"{error}\noperator log:\n{operator.log()[-3000:]}") from None
        operator.stop()
        events = requests_of(control_plane, username)[mark:]
    finally:
        control_plane.kubectl("delete", "--ignore-not-found", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [binding, role, account]}))

    assert refused(events) == [], "the operator was refused what it needed"
    grants, uses = granted(role), used(events)
    print(f"{mode}: {len(grants)} grants, {len(uses)} used, requests by verb: "
          f"{dict(Counter(e['verb'] for e in events))}")
    assert sorted(uses - grants) == []
    unexplained = sorted(grants - uses - ALLOWED_UNUSED)
    assert unexplained == [], f"granted, never used, not explained (used: {sorted(uses)})"
    assert sorted(ALLOWED_UNUSED - grants) == [], "explained but no longer granted: drop it"
    assert sorted(ALLOWED_UNUSED & uses) == [], "explained as unused but used: drop it"
