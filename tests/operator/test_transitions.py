"""Stage changes on a live object: in place within one data layout (2→3→4→3→2), refused across
layouts (1↔2, 4↔5) with a condition and a Warning event, changing nothing."""

import pytest

from tests.operator.expected_children import EXPECTED_CHILDREN as EXPECTED

pytestmark = pytest.mark.slow

AFFINITY = {2: "None", 3: "ClientIP", 4: "None"}


def snapshot(kube, namespace):
    """{Kind/name: (uid, resourceVersion)} of every child."""
    out = {}
    for name in kube.children(namespace, "chirp"):
        kind, obj_name = name.split("/")
        meta = kube.read(kind, namespace, obj_name)["metadata"]
        out[name] = (meta["uid"], meta["resourceVersion"])
    return out


def condition(kube, namespace, kind):
    for c in (kube.get(namespace, "chirp").get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return c
    return None


def test_in_place_2_3_4_3_2(operator_process, kube, namespace, wait_until):
    kube.create(namespace, "chirp", {"stage": 2})
    wait_until(lambda: kube.children(namespace, "chirp") == EXPECTED[2], message="stage 2")
    primary = kube.read("StatefulSet", namespace, "chirp-db-primary")["metadata"]["uid"]
    secret = kube.read("Secret", namespace, "chirp-credentials")

    for stage in (3, 4, 3, 2):
        kube.patch_spec(namespace, "chirp", {"stage": stage})
        wait_until(lambda: kube.children(namespace, "chirp") == EXPECTED[stage],
                   message=f"exactly the stage {stage} children")
        wait_until(lambda: (kube.get(namespace, "chirp").get("status") or {}).get("stage") == stage,
                   message=f"status.stage {stage}")
        # The data never moved: same primary StatefulSet, same credentials.
        assert kube.read("StatefulSet", namespace, "chirp-db-primary")["metadata"]["uid"] == primary
        assert kube.read("Secret", namespace, "chirp-credentials")["data"] == secret["data"]
        web = kube.read("Deployment", namespace, "chirp-web")
        assert web["spec"]["replicas"] == (1 if stage == 2 else 3)
        env = {e["name"]: e.get("value") for e in
               web["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["CHIRP_STAGE"] == str(stage)
        assert ("CHIRP_REDIS_URL" in env) is (stage == 4)
        assert ("CHIRP_REPLICA_URLS" in env) is (stage >= 3)
        for service in ("chirp", "chirp-web"):
            assert kube.read("Service", namespace, service)["spec"]["sessionAffinity"] == \
                AFFINITY[stage]

    changes = [e["message"] for e in kube.list("Event", namespace) if e["reason"] == "StageChanged"]
    assert len(changes) == 5, changes


@pytest.mark.parametrize("current, desired", [(4, 5), (1, 2)])
def test_data_moving_change_is_refused_and_changes_nothing(
    operator_process, kube, namespace, wait_until, current, desired
):
    kube.create(namespace, "chirp", {"stage": current})
    wait_until(lambda: (kube.get(namespace, "chirp").get("status") or {}).get("stage") == current,
               message="created")
    # Wait for a settled state (the first status follows the controllers' first pass).
    wait_until(lambda: operator_process.reconciles(namespace, "chirp") >= 2, timeout=20,
               message="settled")
    before = snapshot(kube, namespace)

    kube.patch_spec(namespace, "chirp", {"stage": desired})
    refused = wait_until(lambda: (c := condition(kube, namespace, "Progressing"))
                         and c["reason"] == "MigrationRequired" and c, message="condition")
    assert refused["status"] == "False"
    assert f"from stage {current}" in refused["message"] and f"to stage {desired}" in refused["message"]
    warnings = wait_until(lambda: [e for e in kube.list("Event", namespace)
                                   if e["reason"] == "StageChangeRefused"], message="event")
    assert warnings[0]["type"] == "Warning"

    # Several reconciles later: still nothing changed, and the warning was said once.
    seen = operator_process.reconciles(namespace, "chirp")
    wait_until(lambda: operator_process.reconciles(namespace, "chirp") >= seen + 2, timeout=20,
               message="more reconciles")
    assert snapshot(kube, namespace) == before
    status = kube.get(namespace, "chirp")["status"]
    assert status["stage"] == current
    assert len([e for e in kube.list("Event", namespace) if e["reason"] == "StageChangeRefused"]) == 1

    # Going back clears the refusal.
    kube.patch_spec(namespace, "chirp", {"stage": current})
    wait_until(lambda: condition(kube, namespace, "Progressing")["reason"] != "MigrationRequired",
               message="refusal cleared")
