"""Operator faults on a real API server (a control plane of this module's own, so no other
operator finishes the work): the operator killed half way through a reconcile, the API server
away for 30 s, the operator uninstalled before its ScaleStages are deleted, and ScaleStages side
by side that must not touch each other's objects.

"No duplicate" is read from the API server's audit log: every child is created (a server-side
apply answering 201) exactly once, by the operator, whatever happened in between.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from scalestage import handlers
from scalestage.apply import FIELD_MANAGER
from scalestage.names import Names
from tests.operator.expected_children import EXPECTED_CHILDREN as EXPECTED
from tests.operator.expected_children import INSTANCE
from tests.operator.own_plane import (  # noqa: F401  (fixtures: this module's own plane)
    own_api,
    own_control_plane,
    own_crd,
    own_deleted_namespaces,
    own_kube,
)
from tests.polling import wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "scalestage-operator"
HELM = REPO / ".tools" / "bin" / "helm"
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"  # what kopf puts on objects it guards
OUTAGE_SECONDS = 30
NAMES = Names(INSTANCE)


def named(instance: str, children: set[str]) -> set[str]:
    """EXPECTED_CHILDREN (written for an instance named `chirp`) for another instance name."""
    return {child.replace(f"/{INSTANCE}", f"/{instance}", 1) for child in children}


def status_of(kube, namespace, name=INSTANCE):
    return (kube.get(namespace, name) or {}).get("status") or {}


def operator_creates(control_plane, namespace) -> Counter:
    """How many times the operator created each object in a namespace (a server-side apply of a
    missing object answers 201 Created; kopf's Events excluded)."""
    return Counter(
        f"{e['objectRef']['resource']}/{e['objectRef']['name']}"
        for e in control_plane.audit_events()
        if e.get("userAgent", "").startswith(FIELD_MANAGER) and e["stage"] == "ResponseComplete"
        and (e.get("objectRef") or {}).get("namespace") == namespace
        and e["objectRef"].get("resource") != "events"
        and (e.get("responseStatus") or {}).get("code") == 201)


def assert_created_once(control_plane, namespace, expected_count):
    creates = operator_creates(control_plane, namespace)
    assert {name: n for name, n in creates.items() if n != 1} == {}, "created more than once"
    assert len(creates) == expected_count, sorted(creates)


def one_replica_set_each(api, namespace):
    """Every Deployment has exactly one ReplicaSet (a template applied twice differently would
    leave two)."""
    owners = Counter(ref.name for rs in client.AppsV1Api(api).list_namespaced_replica_set(
        namespace).items for ref in rs.metadata.owner_references or [])
    return owners and all(n == 1 for n in owners.values()) and owners


# --- killed half way --------------------------------------------------------------------------
def retry_state(kube, namespace) -> list[str]:
    """kopf's progress annotations (handlers.py's prefix) on the ScaleStage: left while a change
    handler is to be retried, removed once it succeeds."""
    annotations = kube.get(namespace, INSTANCE)["metadata"].get("annotations") or {}
    return [key for key in annotations if key.startswith(f"{handlers.ANNOTATIONS_PREFIX}/on_")]


def test_an_operator_killed_mid_reconcile_is_resumed_by_the_next(
        control_plane, api, crd, kube, start_operator, namespace):
    # A quota lets one Deployment in: the first operator's reconcile of stage 5 stops half way
    # (Secret, ConfigMaps, Services, StatefulSets and one Deployment created) and keeps retrying.
    core = client.CoreV1Api(api)
    core.create_namespaced_resource_quota(namespace, {
        "metadata": {"name": "halfway"}, "spec": {"hard": {"count/deployments.apps": "1"}}})
    wait_until(lambda: core.read_namespaced_resource_quota("halfway", namespace).status.hard,
               what="the quota counted (until then it refuses everything)")
    first = start_operator(control_plane.kubeconfig)
    created = kube.create(namespace, INSTANCE, {"stage": 5})
    wait_until(lambda: "exceeded quota" in first.log(), what="the reconcile stopped half way")
    # kopf keeps the failed attempts in an annotation, to retry them
    wait_until(lambda: retry_state(kube, namespace), what="kopf's retry state")
    half = kube.children(namespace)
    assert "Secret/chirp-credentials" in half and len(half) < len(EXPECTED[5]), half
    assert sum(child.startswith("Deployment/") for child in half) == 1, half  # the quota's one
    credentials = kube.read("Secret", namespace, NAMES.credentials)["data"]

    first.process.kill()  # SIGKILL: no cleanup of any kind
    first.process.wait()
    core.delete_namespaced_resource_quota("halfway", namespace)
    second = start_operator(control_plane.kubeconfig)

    wait_until(lambda: kube.children(namespace) == EXPECTED[5], timeout=40,
               what="the next operator finishing the children")
    status = wait_until(lambda: (s := status_of(kube, namespace)).get("stage") == 5 and s,
                        what="status of the resumed reconcile")
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status["phase"] == "Pending"  # no kubelet: nothing can be ready
    assert kube.read("Secret", namespace, NAMES.credentials)["data"] == credentials, (
        "the resumed operator generated new passwords")
    assert_created_once(control_plane, namespace, len(EXPECTED[5]))
    wait_until(lambda: one_replica_set_each(api, namespace), what="one ReplicaSet each")
    # the next operator resumed the failed handler, and kopf cleared its record on success
    wait_until(lambda: not retry_state(kube, namespace), what="kopf's retry state cleared")
    assert "Traceback" not in second.log()


# --- ScaleStages side by side -----------------------------------------------------------------
def children_with_uids(kube, namespace, instance):
    selector = Names(instance).children_selector
    return {f"{kind}/{obj['metadata']['name']}": (obj["metadata"]["uid"],
                                                  obj["metadata"]["ownerReferences"][0]["uid"])
            for kind in kube.KINDS if kind in EXPECTED_KINDS
            for obj in kube.list(kind, namespace, selector)}


EXPECTED_KINDS = {child.split("/")[0] for children in EXPECTED.values() for child in children}


def test_scalestages_side_by_side_never_touch_each_others_objects(
        control_plane, api, crd, kube, start_operator, namespace, deleted_namespaces):
    other_namespace = f"{namespace[:50]}-b"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": other_namespace}})
    try:
        start_operator(control_plane.kubeconfig)
        # Same namespace, different names; another namespace, the same name.
        instances = {(namespace, "chirp"): 3, (namespace, "blog"): 4, (other_namespace, "chirp"): 3}
        for (ns, name), stage in instances.items():
            kube.create(ns, name, {"stage": stage})
        for (ns, name), stage in instances.items():
            wait_until(lambda ns=ns, name=name, stage=stage: kube.children(ns, name)
                       == named(name, EXPECTED[stage]), timeout=40, what=f"{ns}/{name} children")
            wait_until(lambda ns=ns, name=name, stage=stage:
                       status_of(kube, ns, name).get("stage") == stage, what=f"{ns}/{name} status")
        others = {key: children_with_uids(kube, *key) for key in instances
                  if key != (namespace, "chirp")}
        for (ns, name), children in others.items():
            assert {owner for _, owner in children.values()} == {
                kube.get(ns, name)["metadata"]["uid"]}, f"{ns}/{name}: children of another owner"

        mark = len(control_plane.audit_events())
        kube.delete(namespace, "chirp")
        wait_until(lambda: not kube.children(namespace, "chirp"), timeout=60,
                   what="the deleted ScaleStage's children garbage-collected")
        for key, children in others.items():
            assert children_with_uids(kube, *key) == children, f"{key} touched"
        # The others' own reconciles may still patch their status; none of their children is
        # written. (A reconcile of the deleted one, in flight as it went, may still write its own.)
        # Keyed by resource too: a child may share its name with the other ScaleStage itself
        # (Service "chirp" and ScaleStage "chirp"), whose status its own reconcile patches.
        theirs = {(ns, kube.resource(kind).name, name)
                  for (ns, _), children in others.items()
                  for kind, name in (child.split("/", 1) for child in children)}
        touched = [e for e in control_plane.audit_events()[mark:]
                   if e.get("userAgent", "").startswith(FIELD_MANAGER)
                   and ((ref := e.get("objectRef") or {}).get("namespace"),
                        ref.get("resource"), ref.get("name")) in theirs]
        assert touched == [], [(e["verb"], e["objectRef"]) for e in touched]
        assert status_of(kube, namespace, "blog")["stage"] == 4
        assert status_of(kube, other_namespace, "chirp")["stage"] == 3
    finally:
        deleted_namespaces.delete(other_namespace)


def test_the_drift_checks_events_look_like_kopfs(
        control_plane, api, crd, kube, start_operator, namespace):
    """The drift check runs outside kopf's handlers and posts its Events itself (handlers.py):
    the same shape as those kopf posts for the change handlers."""
    start_operator(control_plane.kubeconfig)
    created = kube.create(namespace, INSTANCE, {"stage": 2})
    [by_kopf] = wait_until(lambda: [e for e in kube.list("Event", namespace)
                                    if e.get("reason") == "StageChanged"], what="kopf's Event")
    handlers.EventPoster(api).post(created, type="Normal", reason="DriftChecked", message="m")
    [ours] = [e for e in kube.list("Event", namespace) if e.get("reason") == "DriftChecked"]
    shape = ("involvedObject", "source", "reportingComponent", "type")
    assert {k: ours[k] for k in shape} == {k: by_kopf[k] for k in shape} | {"type": "Normal"}
    assert ours["involvedObject"]["uid"] == created["metadata"]["uid"]


# --- uninstalled first ------------------------------------------------------------------------
helm_path = str(HELM) if HELM.exists() else shutil.which("helm")


def operator_kubeconfig(control_plane, api, namespace, account, path: Path) -> Path:
    """A kubeconfig with a token of a ServiceAccount, as the operator's pod would have."""
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "operator"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.skipif(not helm_path, reason="helm not built yet (make tools)")
def test_scalestages_deleted_after_the_operator_is_uninstalled_go_at_once(
        control_plane, api, crd, kube, start_operator, namespace, tmp_path):
    """`helm uninstall` first (its Deployment, RBAC and ServiceAccount go; the operator's pod
    stops), then `kubectl delete scalestage`: the ScaleStage and all its children go, because
    nothing holds them (no finalizer; children carry owner references for the garbage
    collector). A ScaleStage still carrying the finalizer of an older operator loses it."""
    helm = [helm_path, f"--kubeconfig={control_plane.kubeconfig}", "--namespace", namespace]
    subprocess.run([*helm, "install", "scalestage-operator", str(CHART), "--skip-crds"],
                   check=True, capture_output=True, text=True, timeout=60)
    # No kubelet runs the chart's pod: the operator runs here with its ServiceAccount's token.
    kubeconfig = operator_kubeconfig(control_plane, api, namespace, "scalestage-operator",
                                     tmp_path / "operator.kubeconfig")
    kube.resource("ScaleStage").create(namespace=namespace, body={
        "apiVersion": "scalestage.dev/v1alpha1", "kind": "ScaleStage",
        "metadata": {"name": "legacy", "finalizers": [KOPF_FINALIZER]}, "spec": {"stage": 2}})
    operator = start_operator(kubeconfig)
    kube.create(namespace, INSTANCE, {"stage": 3})
    for name, stage in ((INSTANCE, 3), ("legacy", 2)):
        wait_until(lambda name=name, stage=stage: kube.children(namespace, name)
                   == named(name, EXPECTED[stage]), timeout=40, what=f"{name} children")
    wait_until(lambda: not kube.get(namespace, "legacy")["metadata"].get("finalizers"),
               what="the older operator's finalizer removed")
    assert not kube.get(namespace, INSTANCE)["metadata"].get("finalizers")

    uninstalled = subprocess.run([*helm, "uninstall", "scalestage-operator"], capture_output=True,
                                 text=True, timeout=60)
    assert uninstalled.returncode == 0, uninstalled.stderr
    operator.stop()  # what the kubelet does to the pod of a deleted Deployment
    assert not kube.list("ServiceAccount", namespace, "app.kubernetes.io/name=scalestage-operator")

    for name in (INSTANCE, "legacy"):
        kube.delete(namespace, name)
    wait_until(lambda: kube.get(namespace, INSTANCE) is None and kube.get(namespace, "legacy")
               is None, timeout=10, what="both ScaleStages gone with no operator running")
    wait_until(lambda: not kube.children(namespace, INSTANCE)
               and not kube.children(namespace, "legacy"), timeout=60,
               what="their children garbage-collected")


# --- the API server away ----------------------------------------------------------------------
@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_the_api_server_away_for_30_seconds(
        outage, control_plane, api, crd, kube, start_operator, namespace):
    """Stopped: connections refused. Frozen (SIGSTOP): connections open, nothing answers, as
    behind a network partition. Either way the same operator process carries on afterwards:
    no child twice, the spec changed after the outage is applied and observed."""
    operator = start_operator(control_plane.kubeconfig)
    kube.create(namespace, INSTANCE, {"stage": 3})
    wait_until(lambda: kube.children(namespace) == EXPECTED[3], timeout=40, what="children")
    wait_until(lambda: status_of(kube, namespace).get("stage") == 3, what="status")

    down, up = {"stopped": (control_plane.stop_apiserver, control_plane.start_apiserver),
                "frozen": (control_plane.freeze_apiserver, control_plane.thaw_apiserver)}[outage]
    away = time.monotonic()
    down()
    try:
        # The outage itself lasts OUTAGE_SECONDS; the operator must live through it.
        wait_until(lambda: operator.process.poll() is not None
                   or time.monotonic() - away >= OUTAGE_SECONDS,
                   timeout=OUTAGE_SECONDS + 10, interval=0.5, what="the outage")
    finally:
        up()
    assert operator.process.poll() is None, f"the operator exited:\n{operator.log()[-3000:]}"

    kube.patch_spec(namespace, INSTANCE, {"web": {"replicas": 4}})
    kube.create(namespace, "after", {"stage": 2})
    wait_until(lambda: (kube.read("Deployment", namespace, NAMES.of("web")) or {})["spec"][
        "replicas"] == 4, timeout=60, what="the spec changed after the outage applied")
    wait_until(lambda: status_of(kube, namespace).get("observedGeneration") == 2,
               what="the new generation observed")
    wait_until(lambda: kube.children(namespace, "after") == named("after", EXPECTED[2]),
               timeout=60, what="a ScaleStage created after the outage served")
    assert kube.children(namespace) == EXPECTED[3]
    assert_created_once(control_plane, namespace, len(EXPECTED[3]) + len(EXPECTED[2]))
    assert operator.process.poll() is None


def test_a_scalestage_whose_childs_name_is_taken_leaves_the_owner_alone(
        control_plane, api, crd, kube, start_operator, namespace):
    """`chirp-web` is both the front door Service of a ScaleStage named chirp-web and the web
    Service of one named chirp: the one created second must leave it to its owner (issue 13), say
    why, never be Ready, and take the name once it is free."""
    operator = start_operator(control_plane.kubeconfig)
    first = kube.create(namespace, INSTANCE, {"stage": 2})
    wait_until(lambda: kube.children(namespace) == EXPECTED[2], timeout=40, what="children")
    owned = {child.split("/")[1] for child in EXPECTED[2]}
    mark = len(control_plane.audit_events())
    kube.create(namespace, "chirp-web", {"stage": 2})
    seen = operator.reconciles(namespace, INSTANCE)
    wait_until(lambda: operator.log().count(f"[{namespace}/chirp-web]") >= 2
               and operator.reconciles(namespace, INSTANCE) >= seen + 2, timeout=40,
               what="passes over both ScaleStages")
    writes = [(e["verb"], e["objectRef"]["resource"], e["objectRef"]["name"])
              for e in control_plane.audit_events()[mark:]
              if e.get("userAgent", "").startswith(FIELD_MANAGER)
              and (e.get("objectRef") or {}).get("namespace") == namespace
              and e["objectRef"].get("name") in owned
              and e["objectRef"].get("resource") != "scalestages"]
    assert writes == [], "the operator rewrote objects of the first ScaleStage"
    web = kube.read("Service", namespace, "chirp-web")
    assert web["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"]

    # The second one says why, in its status and in one Warning Event, and applied nothing.
    status = wait_until(lambda: (s := status_of(kube, namespace, "chirp-web")).get("phase")
                        and s, what="the second one's status")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert status["phase"] == "Failed", status
    assert (ready["status"], ready["reason"]) == ("False", "NameTaken"), ready
    assert ("Service/chirp-web exists already, controlled by ScaleStage chirp (uid "
            f"{first['metadata']['uid']})") in ready["message"]
    assert status["progress"] == "name taken: Service/chirp-web"
    events = wait_until(lambda: [e for e in kube.list("Event", namespace)
                                 if e["involvedObject"]["name"] == "chirp-web"
                                 and e.get("reason") == "NameTaken"], what="the Warning Event")
    assert [(e["type"], e["message"]) for e in events] == [("Warning", ready["message"])]
    assert kube.children(namespace, "chirp-web") == set()

    # The name freed (its owner deleted, its children garbage-collected): the next pass takes it.
    kube.delete(namespace, INSTANCE)
    wait_until(lambda: kube.children(namespace, "chirp-web") == named("chirp-web", EXPECTED[2]),
               timeout=60, what="the second one's children once the name is free")
    status = wait_until(lambda: (s := status_of(kube, namespace, "chirp-web")).get("stage") == 2
                        and s, what="the second one's status at stage 2")
    assert status["phase"] != "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] != "NameTaken"
    web = kube.read("Service", namespace, "chirp-web")
    assert web["metadata"]["ownerReferences"][0]["name"] == "chirp-web"
