"""The operator against a real API server and controller manager (no kubelet: pods stay Pending).

Each stage yields exactly its children; an idle reconcile makes no write call (the API server's
audit log proves it); drift is restored; deleting the ScaleStage deletes everything.
"""

import base64
import json

import pytest

from scalestage.apply import FIELD_MANAGER
from scalestage.names import Names
from scalestage.specs import architecture
from tests.operator.expected_children import EXPECTED_CHILDREN as EXPECTED
from tests.operator.expected_children import INSTANCE, SPOFS, STAGE_NAMES, replicas
from tests.polling import wait_until

pytestmark = pytest.mark.slow

ADMIN = "scalestage-test-admin"  # the user of both the operator and the tests (controlplane.py)
NAMES = Names(INSTANCE)
ARCHITECTURE = NAMES.architecture  # the ConfigMap's name


def children_are(kube, namespace, expected):
    return lambda: kube.children(namespace, "chirp") == expected


def status_of(kube, namespace):
    return kube.get(namespace, "chirp").get("status") or {}


def events_of(kube, namespace, reason):
    return [e for e in kube.list("Event", namespace) if e.get("reason") == reason]


@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5])
def test_fresh_stage_yields_exactly_its_children(operator_process, kube, namespace, stage):
    created = kube.create(namespace, "chirp", {"stage": stage})
    wait_until(children_are(kube, namespace, EXPECTED[stage]), timeout=30,
               what=f"stage {stage} children")
    status = wait_until(lambda: (found := status_of(kube, namespace)).get("stage") == stage
                        and found, what="status")
    assert status["stageName"] == STAGE_NAMES[stage]
    assert status["phase"] == "Pending"  # no kubelet here: nothing can become ready
    assert status["observedGeneration"] == 1
    assert {c["name"]: (c["desired"], c["ready"]) for c in status["components"]} == {
        component: (count, 0) for component, count in replicas(stage).items()}
    assert status["spofs"] == SPOFS[stage]
    [event] = wait_until(lambda: events_of(kube, namespace, "StageChanged"), what="event")
    assert event["involvedObject"]["uid"] == created["metadata"]["uid"]
    for name in EXPECTED[stage]:
        kind, obj_name = name.split("/")
        obj = kube.read(kind, namespace, obj_name)
        [ref] = obj["metadata"]["ownerReferences"]
        assert ref["uid"] == created["metadata"]["uid"] and ref["controller"] is True
        # One field manager, and only ever server-side apply under it.
        ours = [m for m in obj["metadata"]["managedFields"] if m["manager"] == FIELD_MANAGER]
        assert [(m["operation"], m.get("subresource")) for m in ours] == [("Apply", None)], name


def test_idle_reconcile_makes_zero_write_calls(operator_process, kube, namespace, control_plane):
    kube.create(namespace, "chirp", {"stage": 4})
    wait_until(children_are(kube, namespace, EXPECTED[4]), what="stage 4 children")
    # Let the first status settle (controllers observe the new objects), then start counting.
    baseline = operator_process.reconciles(namespace, "chirp")
    wait_until(lambda: operator_process.reconciles(namespace, "chirp") >= baseline + 2,
               timeout=6 * operator_process.resync_seconds + 10, what="two settling reconciles")

    def our_writes(since):
        return [e for e in control_plane.audit_events()[since:]
                if e["user"]["username"] == ADMIN
                and (e.get("objectRef") or {}).get("namespace") == namespace]

    mark = len(control_plane.audit_events())
    before = operator_process.reconciles(namespace, "chirp")
    wait_until(lambda: operator_process.reconciles(namespace, "chirp") >= before + 3,
               timeout=10 * operator_process.resync_seconds + 10, what="three idle reconciles")
    writes = our_writes(mark)
    assert writes == [], [(e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("name"),
                           e.get("userAgent")) for e in writes]

    # The measurement can fail: one no-op server-side apply (exactly the fields the operator
    # applies, so nothing changes in etcd) is still a write call, and the audit log shows it.
    mark = len(control_plane.audit_events())
    current = kube.read("ConfigMap", namespace, ARCHITECTURE)
    meta = current["metadata"]
    kube.server_side_apply({
        "apiVersion": "v1", "kind": "ConfigMap", "data": current["data"],
        "metadata": {key: meta[key] for key in ("name", "namespace", "labels", "annotations",
                                                "ownerReferences")},
    }, FIELD_MANAGER)
    assert [e["verb"] for e in our_writes(mark)] == ["patch"]
    after = kube.read("ConfigMap", namespace, ARCHITECTURE)["metadata"]
    assert after["resourceVersion"] == meta["resourceVersion"], "not a no-op"


def test_drift_is_restored(operator_process, kube, namespace):
    kube.create(namespace, "chirp", {"stage": 3})
    wait_until(children_are(kube, namespace, EXPECTED[3]), what="stage 3 children")
    kube.delete_child("Service", namespace, NAMES.of("web"))
    kube.merge_patch("Deployment", namespace, NAMES.of("web"), {"spec": {"replicas": 1}})
    kube.merge_patch("Service", namespace, NAMES.front_door, {"spec": {"sessionAffinity": "None"}})
    kube.merge_patch("ConfigMap", namespace, ARCHITECTURE, {"data": {architecture.KEY: "{}"}})

    def restored():
        svc = kube.read("Service", namespace, NAMES.of("web"))
        web = kube.read("Deployment", namespace, NAMES.of("web"))
        front = kube.read("Service", namespace, NAMES.front_door)
        drawn = kube.read("ConfigMap", namespace, ARCHITECTURE)["data"][architecture.KEY]
        return (svc is not None and web["spec"]["replicas"] == 3
                and front["spec"]["sessionAffinity"] == "ClientIP"
                and json.loads(drawn).get("stage") == 3)

    wait_until(restored, timeout=3 * operator_process.resync_seconds + 10, what="drift restored")


def test_deleting_the_scalestage_deletes_everything(operator_process, kube, namespace):
    kube.create(namespace, "chirp", {"stage": 3})
    wait_until(children_are(kube, namespace, EXPECTED[3]), what="stage 3 children")
    # The StatefulSet controller creates the volume claims and pods (they stay Pending here).
    wait_until(lambda: len(kube.list("PersistentVolumeClaim", namespace)) == 3, what="3 PVCs")
    wait_until(lambda: len(kube.list("Pod", namespace)) == 6, what="6 pods")
    kube.delete(namespace, "chirp")
    wait_until(lambda: not kube.children(namespace, "chirp")
               and not kube.list("PersistentVolumeClaim", namespace)
               and not kube.list("Pod", namespace),
               timeout=60, what="children, volume claims and pods garbage-collected")


def test_passwords_never_leave_the_secret(operator_process, kube, namespace):
    kube.create(namespace, "chirp", {"stage": 3})
    wait_until(children_are(kube, namespace, EXPECTED[3]), what="stage 3 children")
    wait_until(lambda: status_of(kube, namespace).get("stage") == 3, what="status")
    secret = kube.read("Secret", namespace, NAMES.credentials)
    values = [base64.b64decode(v).decode() for v in secret["data"].values()]
    assert len(values) == 3 and all(len(v) >= 32 for v in values)
    visible = [json.dumps(kube.get(namespace, "chirp")), operator_process.log(),
               json.dumps(kube.list("Event", namespace))]
    for kind in ("Deployment", "StatefulSet", "ConfigMap", "Service"):
        visible.append(json.dumps(kube.list(kind, namespace)))
    for value in values:
        assert not any(value in text for text in visible)
    # Generated once: a later reconcile keeps them.
    kube.patch_spec(namespace, "chirp", {"web": {"replicas": 4}})
    wait_until(lambda: kube.read("Deployment", namespace, NAMES.of("web"))["spec"]["replicas"] == 4,
               what="scaled")
    assert kube.read("Secret", namespace, NAMES.credentials)["data"] == secret["data"]
