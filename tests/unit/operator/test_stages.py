"""Stage plans: defaults per stage, overrides, components and SPOFs."""

import pytest

from scalestage import stages


def test_five_stages_with_their_names():
    assert {n: s.name for n, s in stages.STAGES.items()} == {
        1: "monolith", 2: "separate-db", 3: "load-balanced", 4: "cached", 5: "sharded"}


@pytest.mark.parametrize(
    "stage, spofs",
    [(1, ["monolith"]), (2, ["web", "db-primary"]), (3, ["db-primary"]),
     (4, ["db-primary", "redis"]), (5, ["db-shard-0-primary", "db-shard-1-primary", "redis"])],
)
def test_spofs_follow_the_stage_table(plan, stage, spofs):
    assert plan(stage).spofs == spofs


def test_stage_5_lists_one_write_spof_per_shard(plan):
    spofs = plan(5, database={"shards": 4}).spofs
    assert spofs == [f"db-shard-{i}-primary" for i in range(4)] + ["redis"]


@pytest.mark.parametrize(
    "stage, expected",
    [
        (1, [("monolith", "StatefulSet", 1)]),
        (2, [("web", "Deployment", 1), ("db-primary", "StatefulSet", 1)]),
        (3, [("web", "Deployment", 3), ("db-primary", "StatefulSet", 1),
             ("db-replica", "StatefulSet", 2)]),
        (4, [("web", "Deployment", 3), ("redis", "Deployment", 1),
             ("db-primary", "StatefulSet", 1), ("db-replica", "StatefulSet", 2)]),
        (5, [("edge", "Deployment", 2), ("web", "Deployment", 3), ("worker", "Deployment", 2),
             ("redis", "Deployment", 1),
             ("db-shard-0-primary", "StatefulSet", 1), ("db-shard-0-replica", "StatefulSet", 1),
             ("db-shard-1-primary", "StatefulSet", 1), ("db-shard-1-replica", "StatefulSet", 1)]),
    ],
)
def test_default_components_per_stage(plan, stage, expected):
    assert [(c.name, c.kind, c.replicas) for c in stages.components(plan(stage))] == expected


def test_overrides_replace_defaults(plan):
    p = plan(5, web={"replicas": 6}, database={"readReplicas": 2, "shards": 3, "storage": "5Gi"},
             workers={"replicas": 4}, images={"app": "example/chirp:1"})
    assert (p.web_replicas, p.read_replicas, p.shards, p.workers, p.storage) == (6, 2, 3, 4, "5Gi")
    assert p.images["app"] == "example/chirp:1"
    assert p.images["postgres"] == stages.DEFAULT_IMAGES["postgres"]


def test_counts_a_stage_does_not_use_stay_zero(plan):
    p = plan(2, web={"replicas": 5}, database={"readReplicas": 2, "shards": 3},
             workers={"replicas": 2})
    assert (p.web_replicas, p.read_replicas, p.shards, p.workers) == (1, 0, 0, 0)


def test_zero_read_replicas_at_stage_5_drops_the_replica_sets(plan):
    names = [c.name for c in stages.components(plan(5, database={"readReplicas": 0}))]
    assert not [n for n in names if n.endswith("-replica")]


def test_default_images_from_the_operator_are_below_the_spec(plan):
    p = stages.resolve({"stage": 1, "images": {"redis": "r:1"}}, default_images={"app": "a:1",
                                                                                 "redis": "r:0"})
    assert (p.images["app"], p.images["redis"]) == ("a:1", "r:1")


def test_resources_override_replaces_the_default(plan):
    custom = {"requests": {"cpu": "1", "memory": "1Gi"}}
    p = plan(3, web={"resources": custom})
    assert p.resources["web"] == custom
    assert p.resources["database"] == stages.DEFAULT_RESOURCES["database"]


@pytest.mark.parametrize("stage", range(1, 6))
def test_stage_name_lookup(stage):
    assert stages.stage_name(stage) == stages.STAGES[stage].name
