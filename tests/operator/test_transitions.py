"""Stage changes on a live object: in place within one data layout (2→3→4→3→2), refused across
layouts (1↔2, 4↔5) with a condition and a Warning event, changing nothing."""

import pytest

from scalestage.names import Names
from tests.operator.expected_children import EXPECTED_CHILDREN as EXPECTED
from tests.operator.expected_children import INSTANCE
from tests.polling import wait_until

pytestmark = pytest.mark.slow

NAMES = Names(INSTANCE)
AFFINITY = {2: "None", 3: "ClientIP", 4: "None"}


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

    for stage in (3, 4, 3, 2):
        kube.patch_spec(namespace, "chirp", {"stage": stage})
        wait_until(lambda stage=stage: kube.children(namespace, "chirp") == EXPECTED[stage],
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
        assert env["CHIRP_STAGE"] == str(stage)
        assert ("CHIRP_REDIS_URL" in env) is (stage == 4)
        assert ("CHIRP_REPLICA_URLS" in env) is (stage >= 3)
        for service in (NAMES.front_door, NAMES.of("web")):
            assert kube.read("Service", namespace, service)["spec"]["sessionAffinity"] == \
                AFFINITY[stage]

    # Events are posted in the background: wait for the fifth, then compare all five.
    changes = wait_until(lambda: len(found := messages(kube, namespace, "StageChanged")) >= 5
                         and found, what="five StageChanged events")
    assert sorted(changes) == sorted([
        "stage 2 (separate-db)",
        "stage 2 (separate-db) → stage 3 (load-balanced)",
        "stage 3 (load-balanced) → stage 4 (cached)",
        "stage 4 (cached) → stage 3 (load-balanced)",
        "stage 3 (load-balanced) → stage 2 (separate-db)",
    ])


@pytest.mark.parametrize("current, desired", [(4, 5), (1, 2)])
def test_data_moving_change_is_refused_and_changes_nothing(
    operator_process, kube, namespace, current, desired
):
    kube.create(namespace, "chirp", {"stage": current})
    wait_until(lambda: status_stage(kube, namespace) == current, what="created")
    # Wait for a settled state (the first status follows the controllers' first pass).
    wait_until(lambda: operator_process.reconciles(namespace, "chirp") >= 2, timeout=20,
               what="settled")
    before = snapshot(kube, namespace)

    kube.patch_spec(namespace, "chirp", {"stage": desired})
    refused = wait_until(lambda: (c := condition(kube, namespace, "Progressing"))
                         and c["reason"] == "MigrationRequired" and c, what="condition")
    assert refused["status"] == "False"
    assert f"from stage {current}" in refused["message"]
    assert f"to stage {desired}" in refused["message"]
    [warning] = wait_until(lambda: [e for e in kube.list("Event", namespace)
                                    if e["reason"] == "StageChangeRefused"], what="event")
    assert warning["type"] == "Warning" and warning["message"] == refused["message"]

    # Several reconciles later: still nothing changed, and the warning was said once.
    seen = operator_process.reconciles(namespace, "chirp")
    wait_until(lambda: operator_process.reconciles(namespace, "chirp") >= seen + 2, timeout=20,
               what="more reconciles")
    assert snapshot(kube, namespace) == before
    assert status_stage(kube, namespace) == current
    assert len(messages(kube, namespace, "StageChangeRefused")) == 1

    # Going back clears the refusal.
    kube.patch_spec(namespace, "chirp", {"stage": current})
    wait_until(lambda: condition(kube, namespace, "Progressing")["reason"] != "MigrationRequired",
               what="refusal cleared")
