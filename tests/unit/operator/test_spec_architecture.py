"""Architecture ConfigMap: the JSON the architecture page reads, stable for an unchanged plan."""

import json

import pytest

from scalestage import stages
from scalestage.specs import app, architecture


def test_one_configmap_with_the_document(plan, names):
    [cm] = architecture.build(plan(4), names)
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "chirp-architecture"
    assert list(cm["data"]) == ["architecture.json"]
    assert json.loads(cm["data"][architecture.KEY]) == architecture.document(plan(4), names)


def test_same_plan_same_bytes(plan, names):
    assert architecture.build(plan(5), names) == architecture.build(plan(5), names)


def test_scaling_changes_the_document(plan, names):
    a = architecture.build(plan(3), names)[0]["data"][architecture.KEY]
    b = architecture.build(plan(3, web={"replicas": 5}), names)[0]["data"][architecture.KEY]
    assert a != b


def test_document_matches_the_contract(plan, names):
    doc = architecture.document(plan(3), names)
    pods_of = {"app.kubernetes.io/instance": "chirp"}
    db = {**pods_of, "app.kubernetes.io/component": "db", "scalestage.dev/cluster": "db"}
    assert {k: v for k, v in doc.items() if k != "lessons"} == {
        "stage": 3,
        "stageName": "load-balanced",
        "instance": "chirp",
        "components": [
            {"name": "web", "kind": "Deployment", "replicas": 3,
             "selector": {**pods_of, "app.kubernetes.io/component": "web"}},
            {"name": "db-primary", "kind": "StatefulSet", "replicas": 1,
             "selector": {**db, "scalestage.dev/role": "primary"}},
            {"name": "db-replica", "kind": "StatefulSet", "replicas": 2,
             "selector": {**db, "scalestage.dev/role": "replica"}},
        ],
        "spofs": ["db-primary"],
        "flows": [
            {"from": "client", "to": "web", "what": "HTTP"},
            {"from": "web", "to": "db-primary", "what": "writes"},
            {"from": "web", "to": "db-replica", "what": "reads"},
        ],
    }


@pytest.mark.parametrize("stage", sorted(stages.STAGES))
def test_everything_comes_from_the_stage_table(plan, names, stage):
    resolved = plan(stage)
    doc = architecture.document(resolved, names)
    assert (doc["stage"], doc["stageName"]) == (stage, stages.STAGES[stage].name)
    assert doc["spofs"] == resolved.spofs
    assert [{k: c[k] for k in ("name", "kind", "replicas")} for c in doc["components"]] == [
        {"name": c.name, "kind": c.kind, "replicas": c.replicas}
        for c in stages.components(resolved)]
    assert [lesson["stage"] for lesson in doc["lessons"]] == [1, 2, 3, 4, 5]
    assert all(lesson["breaks"] and lesson["nextFixes"] for lesson in doc["lessons"])


@pytest.mark.parametrize("stage", sorted(stages.STAGES))
def test_each_selector_matches_the_pods_of_its_workload(plan, names, stage):
    """The page finds a component's pods by its selector: it must be the workload's own."""
    from scalestage import specs

    workloads = {m["metadata"]["name"]: m for m in specs.build_all(
        plan(stage), names, {"password": "p", "replication-password": "r", "secret-key": "k"})
        if m["kind"] in ("Deployment", "StatefulSet")}
    for component in architecture.document(plan(stage), names)["components"]:
        workload = workloads[f"chirp-{component['name']}"]
        assert component["selector"] == workload["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("stage", sorted(stages.STAGES))
def test_arrows_join_components_of_the_stage(plan, names, stage):
    doc = architecture.document(plan(stage), names)
    present = {c["name"] for c in doc["components"]} | {"client"}
    assert all(f["from"] in present and f["to"] in present for f in doc["flows"])
    fronts = [f["to"] for f in doc["flows"] if f["from"] == "client"]
    assert fronts == [{1: "monolith", 5: "edge"}.get(stage, "web")]


def test_stage_five_path_runs_edge_web_cache_shards_and_workers(plan, names):
    arrows = {(f["from"], f["to"]) for f in architecture.document(plan(5), names)["flows"]}
    assert {("edge", "web"), ("web", "redis"), ("web", "db-shard-0-primary"),
            ("web", "db-shard-1-replica"), ("worker", "redis")} <= arrows


def test_stage_two_reads_and_writes_the_primary(plan, names):
    assert architecture.flows(plan(2))[1:] == [
        {"from": "web", "to": "db-primary", "what": "reads, writes"}]


@pytest.mark.parametrize("command", ["web", "worker", "migrate"])
def test_chirp_containers_read_it_from_chirp_architecture_by_default(plan, names, env_of,
                                                                     command):
    """Fixed at start; the web pods read it from the mounted ConfigMap instead (test_spec_web)."""
    container = app.container(plan(5), names, command)
    assert env_of(container)["CHIRP_ARCHITECTURE"] == {
        "configMapKeyRef": {"name": "chirp-architecture", "key": "architecture.json"}}
