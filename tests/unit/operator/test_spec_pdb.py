"""PodDisruptionBudgets: only for workloads with two or more pods."""

from scalestage.specs import pdb


def names_of(plan, names, stage, **overrides):
    return {m["metadata"]["name"]: m for m in pdb.build(plan(stage, **overrides), names)}


def test_none_for_single_pods(plan, names):
    assert pdb.build(plan(1), names) == [] and pdb.build(plan(2), names) == []


def test_stage_3_web_and_replicas(plan, names):
    assert set(names_of(plan, names, 3)) == {"chirp-web", "chirp-db-replica"}


def test_replica_budget_selects_replica_pods(plan, names):
    budget = names_of(plan, names, 3)["chirp-db-replica"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "chirp", "app.kubernetes.io/component": "db",
        "scalestage.dev/cluster": "db", "scalestage.dev/role": "replica"}


def test_follows_overrides(plan, names):
    assert "chirp-db-shard-0-replica" in names_of(plan, names, 5, database={"readReplicas": 2})
    assert "chirp-db-shard-0-replica" not in names_of(plan, names, 5)
    assert "chirp-web" not in names_of(plan, names, 3, web={"replicas": 1})
