"""Properties every child keeps at every stage: labels, non-root pods, no secret values outside
the Secret, names that fit, selectors that match, exactly the expected objects."""

import json

import pytest

from scalestage import specs, stages
from scalestage.names import INSTANCE, MANAGED_BY, MANAGED_BY_LABEL, Names
from scalestage.specs import secrets

STAGES = range(1, 6)
SECRET_VALUES = {key: f"s3cr3t-{key}-value" for key in secrets.KEYS}


def children(stage, **overrides):
    return specs.build_all(stages.resolve({"stage": stage, **overrides}), Names("chirp"),
                           SECRET_VALUES)


def pods(manifests):
    for m in manifests:
        if m["kind"] in ("Deployment", "StatefulSet"):
            yield m, m["spec"]["template"]["spec"]


# the architecture page's read-only access, at every stage
ACCESS = {f"{kind}/chirp-architecture-reader" for kind in ("ServiceAccount", "Role", "RoleBinding")}
EXPECTED = {
    1: {"Secret/chirp-credentials", "ConfigMap/chirp-architecture", "StatefulSet/chirp-monolith",
        "Service/chirp", "Service/chirp-monolith-db"} | ACCESS,
    2: {"Secret/chirp-credentials", "ConfigMap/chirp-architecture", "StatefulSet/chirp-db-primary",
        "Service/chirp-db-rw", "Service/chirp-db-ro", "Deployment/chirp-web", "Service/chirp-web",
        "Service/chirp"} | ACCESS,
}
EXPECTED[3] = EXPECTED[2] | {"StatefulSet/chirp-db-replica", "Service/chirp-db-ro",
                             "PodDisruptionBudget/chirp-web",
                             "PodDisruptionBudget/chirp-db-replica"}
EXPECTED[4] = EXPECTED[3] | {"Deployment/chirp-redis", "Service/chirp-redis"}
EXPECTED[5] = (EXPECTED[4] - {"StatefulSet/chirp-db-primary", "Service/chirp-db-rw",
                              "StatefulSet/chirp-db-replica", "Service/chirp-db-ro",
                              "PodDisruptionBudget/chirp-db-replica"}) | {
    f"{kind}/chirp-db-shard-{i}-{suffix}" for i in range(2)
    for kind, suffix in (("StatefulSet", "primary"), ("StatefulSet", "replica"),
                         ("Service", "rw"), ("Service", "ro"))} | {
    "Deployment/chirp-worker", "PodDisruptionBudget/chirp-worker", "ConfigMap/chirp-edge-config",
    "Deployment/chirp-edge", "Service/chirp-edge", "PodDisruptionBudget/chirp-edge"}
# the NetworkPolicies: every pod to DNS only, the load Job's pods, and one per group of pods
POLICIES = {
    1: ["monolith"],
    2: ["web", "db-primary"],
    3: ["web", "db-primary", "db-replica"],
    4: ["web", "db-primary", "db-replica", "redis"],
    5: ["web", "edge", "worker", "redis"] + [f"db-shard-{i}-{role}" for i in range(2)
                                             for role in ("primary", "replica")],
}
for _stage, _groups in POLICIES.items():
    EXPECTED[_stage] |= {f"NetworkPolicy/chirp-netpol-{g}" for g in ["default", "load", *_groups]}


@pytest.mark.parametrize("stage", STAGES)
def test_exactly_the_expected_children(stage):
    built = [f"{m['kind']}/{m['metadata']['name']}" for m in children(stage)]
    assert len(built) == len(set(built)), "no object built twice"
    assert set(built) == EXPECTED[stage]


@pytest.mark.parametrize("stage", STAGES)
def test_every_child_is_labelled_for_pruning(stage):
    for m in children(stage):
        labels = m["metadata"]["labels"]
        assert labels[MANAGED_BY_LABEL] == MANAGED_BY and labels[INSTANCE] == "chirp", m["metadata"]


@pytest.mark.parametrize("stage", STAGES)
def test_every_pod_and_container_is_non_root(stage):
    for workload, pod in pods(children(stage)):
        assert pod["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            uid = c["securityContext"].get("runAsUser", pod["securityContext"].get("runAsUser"))
            assert uid and uid > 0, (workload["metadata"]["name"], c["name"])
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("stage", STAGES)
def test_secret_values_live_only_in_the_secret(stage):
    for m in children(stage):
        if m["kind"] == "Secret":
            continue
        text = json.dumps(m)
        for value in SECRET_VALUES.values():
            assert value not in text, m["metadata"]["name"]


@pytest.mark.parametrize("stage", STAGES)
def test_workload_selectors_match_their_pod_labels(stage):
    for workload, _ in pods(children(stage)):
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("stage", STAGES)
def test_every_service_selects_some_pods(stage):
    built = children(stage)
    templates = [w["spec"]["template"]["metadata"]["labels"] for w, _ in pods(built)]
    for svc in (m for m in built if m["kind"] == "Service"):
        selector = svc["spec"]["selector"]
        assert any(selector.items() <= t.items() for t in templates), svc["metadata"]["name"]


def test_names_fit_for_the_longest_allowed_instance_name():
    # The CRD limits instance names to 30 characters; pod names of StatefulSets add -N and the
    # controller-revision-hash label adds ~11 more, which must stay within 63.
    long_name = "x" * 30
    built = specs.build_all(stages.resolve({"stage": 5, "database": {"shards": 8}}),
                            Names(long_name), SECRET_VALUES)
    for m in built:
        limit = 52 if m["kind"] == "StatefulSet" else 63
        assert len(m["metadata"]["name"]) <= limit, m["metadata"]["name"]


@pytest.mark.parametrize("stage", STAGES)
def test_builders_are_pure(stage):
    assert children(stage) == children(stage)
