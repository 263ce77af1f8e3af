"""Architecture ConfigMap: the JSON the architecture page reads, stable for an unchanged plan."""

import json

import pytest

from scalestage import stages
from scalestage.specs import app, architecture


def test_one_configmap_with_the_document(plan, names):
    [cm] = architecture.build(plan(4), names)
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "chirp-architecture"
    assert list(cm["data"]) == ["architecture.json"]
    assert json.loads(cm["data"][architecture.KEY]) == architecture.document(plan(4))


def test_same_plan_same_bytes(plan, names):
    assert architecture.build(plan(5), names) == architecture.build(plan(5), names)


def test_scaling_changes_the_document(plan, names):
    a = architecture.build(plan(3), names)[0]["data"][architecture.KEY]
    b = architecture.build(plan(3, web={"replicas": 5}), names)[0]["data"][architecture.KEY]
    assert a != b


def test_document_matches_the_contract(plan):
    doc = architecture.document(plan(3))
    assert doc == {
        "stage": 3,
        "stageName": "load-balanced",
        "components": [
            {"name": "web", "kind": "Deployment", "replicas": 3},
            {"name": "db-primary", "kind": "StatefulSet", "replicas": 1},
            {"name": "db-replica", "kind": "StatefulSet", "replicas": 2},
        ],
        "spofs": ["db-primary"],
    }


@pytest.mark.parametrize("stage", sorted(stages.STAGES))
def test_everything_comes_from_the_stage_table(plan, stage):
    resolved = plan(stage)
    doc = architecture.document(resolved)
    assert (doc["stage"], doc["stageName"]) == (stage, stages.STAGES[stage].name)
    assert doc["spofs"] == resolved.spofs
    assert doc["components"] == [
        {"name": c.name, "kind": c.kind, "replicas": c.replicas}
        for c in stages.components(resolved)]


@pytest.mark.parametrize("command", ["web", "worker", "migrate"])
def test_chirp_containers_read_it_from_chirp_architecture_by_default(plan, names, env_of,
                                                                     command):
    """Fixed at start; the web pods read it from the mounted ConfigMap instead (test_spec_web)."""
    container = app.container(plan(5), names, command)
    assert env_of(container)["CHIRP_ARCHITECTURE"] == {
        "configMapKeyRef": {"name": "chirp-architecture", "key": "architecture.json"}}
