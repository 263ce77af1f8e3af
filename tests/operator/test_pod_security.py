"""The API server's own PodSecurity admission (on by default in kube-apiserver v1.34) judges every
pod the operator builds, and the operator's own pod from the chart, in a namespace labelled
`pod-security.kubernetes.io/enforce=restricted`.

Pods are created with a server-side dry run (admission runs, nothing is stored); a pod lacking its
seccomp profile is refused, proving the namespace really enforces. Then the operator runs a stage
in such a namespace and the ReplicaSet and StatefulSet controllers create every pod (no kubelet
here: they stay Pending, but a refused pod is never created at all).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from scalestage import specs, stages
from scalestage.names import INSTANCE as INSTANCE_LABEL
from scalestage.names import Names
from scalestage.specs import secrets
from tests.operator.expected_children import INSTANCE, WORKLOADS
from tests.polling import wait_until

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "scalestage-operator"
HELM = REPO / ".tools" / "bin" / "helm"
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted"
              for mode in ("enforce", "warn", "audit")}
CREDENTIALS = {key: f"not-a-real-{key}" for key in secrets.KEYS}


@pytest.fixture
def restricted_namespace(api, deleted_namespaces):
    """A fresh namespace enforcing the restricted standard, its default ServiceAccount there
    (the ServiceAccount admission refuses pods before it exists)."""
    core = client.CoreV1Api(api)
    name = f"t-restricted-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": RESTRICTED}})
    wait_until(lambda: core.list_namespaced_service_account(
        name, field_selector="metadata.name=default").items, what="default ServiceAccount")
    yield name
    deleted_namespaces.delete(name)


def pods_of(manifests):
    """(Kind/name, Pod) for every workload's pod template: a StatefulSet's claim templates become
    persistentVolumeClaim volumes, as its controller makes them."""
    for m in manifests:
        if "template" not in m.get("spec", {}):
            continue
        template = copy.deepcopy(m["spec"]["template"])
        spec = template["spec"]
        name = m["metadata"]["name"]
        for claim in m["spec"].get("volumeClaimTemplates", []):
            claim_name = claim["metadata"]["name"]
            spec.setdefault("volumes", []).append(
                {"name": claim_name,
                 "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}-0"}})
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {**template.get("metadata", {}), "name": f"{name}-0"}, "spec": spec}
        yield f"{m['kind']}/{name}", pod


def dry_run_refusal(core, namespace, pod) -> str | None:
    """None when admission accepts the pod (dry run: nothing stored), else the API's message."""
    try:
        core.create_namespaced_pod(namespace, pod, dry_run="All")
    except ApiException as error:
        return f"{error.status} {error.reason}: {error.body}"
    return None


@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5])
def test_admission_accepts_every_pod_of_every_stage(api, restricted_namespace, stage):
    core = client.CoreV1Api(api)
    built = specs.build_all(stages.resolve({"stage": stage}), Names(INSTANCE), CREDENTIALS)
    pods = dict(pods_of(built))
    assert len(pods) == len(WORKLOADS[stage])  # every workload of the stage, none missed
    for account in (m for m in built if m["kind"] == "ServiceAccount"):  # applied before pods
        core.create_namespaced_service_account(restricted_namespace, account)
    refused = {name: why for name, pod in pods.items()
               if (why := dry_run_refusal(core, restricted_namespace, pod))}
    assert not refused, refused


def test_admission_refuses_a_pod_without_seccomp(api, restricted_namespace):
    """The control: the same check can fail."""
    core = client.CoreV1Api(api)
    built = specs.build_all(stages.resolve({"stage": 2}), Names(INSTANCE), CREDENTIALS)
    _, pod = next(pods_of(built))
    del pod["spec"]["securityContext"]["seccompProfile"]
    why = dry_run_refusal(core, restricted_namespace, pod)
    assert why and why.startswith("403") and "seccompProfile" in why, why


helm_path = str(HELM) if HELM.exists() else shutil.which("helm")


@pytest.mark.skipif(not helm_path, reason="helm not built yet (make tools)")
def test_admission_accepts_the_operators_own_pod(api, restricted_namespace):
    rendered = subprocess.run(
        [helm_path, "template", "scalestage-operator", str(CHART),
         "--namespace", restricted_namespace],
        capture_output=True, text=True, check=True, timeout=60).stdout
    [deployment] = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
    core = client.CoreV1Api(api)
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    core.create_namespaced_service_account(restricted_namespace, {"metadata": {"name": account}})
    [(_, pod)] = list(pods_of([deployment]))
    assert dry_run_refusal(core, restricted_namespace, pod) is None


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 5])
def test_controllers_create_every_pod_in_a_restricted_namespace(
        operator_process, kube, restricted_namespace, stage):
    """Stage 1 (the monolith's two users in one pod) and stage 5 (every other kind of pod)."""
    kube.create(restricted_namespace, INSTANCE, {"stage": stage})
    wanted = sum(count for _, count in WORKLOADS[stage].values())

    def pods():
        return len(kube.list("Pod", restricted_namespace, f"{INSTANCE_LABEL}={INSTANCE}"))

    def refusals():
        return [e["message"] for e in kube.list("Event", restricted_namespace)
                if e.get("reason") == "FailedCreate"]

    wait_until(lambda: pods() == wanted or refusals(), timeout=60,
               what=f"stage {stage}: {wanted} pods created")
    assert not refusals(), refusals()
    assert pods() == wanted
