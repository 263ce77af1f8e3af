"""Stage changes on a live object: in place within one data layout (2→3→4→3→2); across layouts
(1↔2, 4↔5, a shard count) a data move recorded first and provisioned beside the source."""

import pytest

from scalestage.names import Names
from tests.operator.expected_children import EXPECTED_CHILDREN as EXPECTED
from tests.operator.expected_children import INSTANCE
from tests.polling import wait_until

pytestmark = pytest.mark.slow

NAMES = Names(INSTANCE)
REDIS = {"Deployment/chirp-redis", "Service/chirp-redis", "NetworkPolicy/chirp-netpol-redis"}
# Sticky while sessions live in the process. At 4 the affinity stays while the web pods roll from
# process to Redis sessions — here, with no kubelet, they never finish rolling (the unit tests and
# e2e see it dropped once they have).
AFFINITY = {2: "ClientIP", 3: "ClientIP", 4: "ClientIP"}


def snapshot(kube, namespace):
    """{Kind/name: (uid, resourceVersion)} of every child."""
    out = {}
    for name in kube.children(namespace, "chirp"):
        kind, obj_name = name.split("/")
        meta = kube.read(kind, namespace, obj_name)["metadata"]
        out[name] = (meta["uid"], meta["resourceVersion"])
    return out


def status_stage(kube, namespace):
    return (kube.get(namespace, "chirp").get("status") or {}).get("stage")


def messages(kube, namespace, reason):
    return [e["message"] for e in kube.list("Event", namespace) if e["reason"] == reason]


def condition(kube, namespace, kind):
    for c in (kube.get(namespace, "chirp").get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return c
    return None


def test_in_place_2_3_4_3_2(operator_process, kube, namespace):
    kube.create(namespace, "chirp", {"stage": 2})
    wait_until(lambda: kube.children(namespace, "chirp") == EXPECTED[2], what="stage 2")
    primary = kube.read("StatefulSet", namespace, NAMES.of("db-primary"))["metadata"]["uid"]
    secret = kube.read("Secret", namespace, NAMES.credentials)

    redis_seen = False
    for stage in (3, 4, 3, 2):
        kube.patch_spec(namespace, "chirp", {"stage": stage})
        redis_seen |= stage == 4
        # Below 4, Redis stays while web pods that used it still run: here, with no kubelet, the
        # web pods never finish rolling, so it stays (the unit tests and e2e see it go).
        expected = EXPECTED[stage] | (REDIS if redis_seen and stage < 4 else set())
        wait_until(lambda expected=expected: kube.children(namespace, "chirp") == expected,
                   what=f"exactly the stage {stage} children")
        wait_until(lambda stage=stage: status_stage(kube, namespace) == stage,
                   what=f"status.stage {stage}")
        # The data never moved: same primary StatefulSet, same credentials.
        still = kube.read("StatefulSet", namespace, NAMES.of("db-primary"))
        assert still["metadata"]["uid"] == primary
        assert kube.read("Secret", namespace, NAMES.credentials)["data"] == secret["data"]
        web = kube.read("Deployment", namespace, NAMES.of("web"))
        assert web["spec"]["replicas"] == (1 if stage == 2 else 3)
        env = {e["name"]: e.get("value") for e in
               web["spec"]["template"]["spec"]["containers"][0]["env"]}
        # the stage is the architecture document's (mounted, followed live), not the pod's env:
        # 2↔3 leaves the web pods as they are
        assert "CHIRP_STAGE" not in env and "CHIRP_REPLICA_URLS" in env
        assert ("CHIRP_REDIS_URL" in env) is (stage == 4)
        for service in (NAMES.front_door, NAMES.of("web")):
            assert kube.read("Service", namespace, service)["spec"]["sessionAffinity"] == \
                AFFINITY[stage]

    # Events are posted in the background: wait for the fifth, then compare all five.
    changes = wait_until(lambda: len(found := messages(kube, namespace, "StageChanged")) >= 5
                         and found, what="five StageChanged events")
    assert sorted(changes) == sorted([
        "stage 2 (separate-db)",
        "stage 2 (separate-db) → stage 3 (load-balanced)",
        "stage 3 (load-balanced) → stage 4 (cached); sessions now live in Redis, not in the web "
        "process: logged-in users log in once more",
        "stage 4 (cached) → stage 3 (load-balanced); sessions now live in the web process, not "
        "in Redis: logged-in users log in once more",
        "stage 3 (load-balanced) → stage 2 (separate-db)",
    ])


@pytest.mark.parametrize("current, desired, target_databases", [
    (1, 2, ["db-primary"]), (4, 5, ["db-shard-0-primary", "db-shard-1-primary"])])
def test_a_data_move_is_recorded_first_and_provisions_beside_the_source(
    operator_process, kube, namespace, current, desired, target_databases
):
    """The first steps of a move against a real API server (no kubelet here: the new databases
    never become ready, so the move stays at provisioning; e2e runs it to the end on real pods):
    the decision recorded in status.migration, the target's databases created beside the
    source's, the source stage still serving, one Event, the move kept when the spec turns back."""
    kube.create(namespace, "chirp", {"stage": current})
    wait_until(lambda: status_stage(kube, namespace) == current, what="created")
    before = snapshot(kube, namespace)

    kube.patch_spec(namespace, "chirp", {"stage": desired})
    migration = wait_until(lambda: (kube.get(namespace, "chirp").get("status") or {})
                           .get("migration"), what="status.migration")
    assert (migration["from"], migration["to"], migration["step"]) == (current, desired,
                                                                      "provisioning")
    for database in target_databases:
        wait_until(lambda database=database: f"StatefulSet/chirp-{database}"
                   in kube.children(namespace, "chirp"), what=f"{database} created")
    # the paths between both layouts, for as long as the move runs (docs/network-policies.md);
    # applied in the same pass as the target's databases, so seen a moment after them at most
    move_policies = {"NetworkPolicy/chirp-netpol-move-clients",
                     "NetworkPolicy/chirp-netpol-move-source",
                     "NetworkPolicy/chirp-netpol-move-target"}
    wait_until(lambda: move_policies <= kube.children(namespace, "chirp"),
               what="the move's NetworkPolicies")
    status = wait_until(lambda: (found := kube.get(namespace, "chirp")["status"])
                        .get("phase") == "Migrating" and found, what="phase Migrating")
    assert status["stage"] == current
    assert status["targetStage"] == desired and status["path"] == [desired]
    assert f"{current}→{desired} provisioning" in status["progress"]
    ready = condition(kube, namespace, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Migrating")
    # nothing of the source was touched: every child it had is still the same object
    after = snapshot(kube, namespace)
    assert {k: v[0] for k, v in after.items() if k in before} == {k: v[0] for k, v in
                                                                  before.items()}
    assert not any(name.startswith("Job/") for name in after)  # no copy before they are ready
    [event] = wait_until(lambda: [e for e in kube.list("Event", namespace)
                                  if e["reason"] == "Migrating"], what="the move's event")
    assert f"stage {current}" in event["message"] and "provisioning" in event["message"]

    # Turning back mid-move does not abandon it: the record stays, the walk comes back after.
    kube.patch_spec(namespace, "chirp", {"stage": current})
    wait_until(lambda: kube.get(namespace, "chirp")["status"].get("path") == [desired, current],
               what="the path back after the move")
    assert kube.get(namespace, "chirp")["status"]["migration"]["to"] == desired


def test_a_shard_count_change_provisions_the_new_shards_beside_the_old(operator_process, kube,
                                                                       namespace):
    kube.create(namespace, "chirp", {"stage": 5})
    wait_until(lambda: status_stage(kube, namespace) == 5, what="created")
    before = snapshot(kube, namespace)

    kube.patch_spec(namespace, "chirp", {"stage": 5, "database": {"shards": 3}})
    migration = wait_until(lambda: (kube.get(namespace, "chirp").get("status") or {})
                           .get("migration"), what="status.migration")
    assert (migration["from"], migration["to"]) == (5, 5)
    assert (migration["fromShards"], migration["toShards"]) == (2, 3)
    assert migration["toShardSet"] == "b"
    for i in range(3):
        wait_until(lambda i=i: f"StatefulSet/chirp-db-b-shard-{i}-primary"
                   in kube.children(namespace, "chirp"), what=f"new shard {i}")
    after = snapshot(kube, namespace)
    assert {k: v[0] for k, v in after.items() if k in before} == {k: v[0] for k, v in
                                                                  before.items()}
