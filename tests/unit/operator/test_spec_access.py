"""The architecture page's access: read-only, this instance only, and only for the pods serving
the page."""

import pytest

from scalestage import specs
from scalestage.specs import access

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "escalate", "bind",
               "impersonate", "*"}
SECRETS = {"password": "p", "replication-password": "r", "secret-key": "k"}


def test_an_account_a_role_and_its_binding(plan, names):
    account, role, binding = access.build(plan(3), names)
    assert [m["kind"] for m in (account, role, binding)] == ["ServiceAccount", "Role",
                                                            "RoleBinding"]
    assert {m["metadata"]["name"] for m in (account, role, binding)} == {
        "chirp-architecture-reader"}
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "chirp-architecture-reader"}
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "name": "chirp-architecture-reader"}]
    assert account["automountServiceAccountToken"] is False


def test_the_role_only_reads(plan, names):
    _, role, _ = access.build(plan(5), names)
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"} and not verbs & WRITE_VERBS
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"pods", "scalestages", "configmaps"}  # no secrets


def test_named_objects_are_this_instances_only(plan, names):
    _, role, _ = access.build(plan(3), names)
    by_resource = {rule["resources"][0]: rule for rule in role["rules"]}
    assert by_resource["scalestages"]["resourceNames"] == ["chirp"]
    assert by_resource["configmaps"]["resourceNames"] == ["chirp-architecture"]


@pytest.mark.parametrize("stage", range(1, 6))
def test_only_the_pods_that_serve_the_page_get_a_token(plan, names, stage):
    pods = {m["metadata"]["name"]: m["spec"]["template"]["spec"]
            for m in specs.build_all(plan(stage), names, SECRETS)
            if m["kind"] in ("Deployment", "StatefulSet")}
    with_token = {name for name, pod in pods.items() if pod.get("automountServiceAccountToken")}
    assert with_token == {"chirp-monolith" if stage == 1 else "chirp-web"}
    assert all(pods[name]["serviceAccountName"] == "chirp-architecture-reader"
               for name in with_token)
