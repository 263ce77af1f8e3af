"""Topology ConfigMap: the JSON the architecture page reads, stable for an unchanged plan."""

import json

from scalestage.specs import topology


def test_one_configmap_with_the_document(plan, names):
    [cm] = topology.build(plan(4), names)
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "chirp-topology"
    assert json.loads(cm["data"][topology.KEY]) == topology.document(plan(4))


def test_same_plan_same_bytes(plan, names):
    assert topology.build(plan(5), names) == topology.build(plan(5), names)


def test_scaling_changes_the_document(plan, names):
    a = topology.build(plan(3), names)[0]["data"][topology.KEY]
    b = topology.build(plan(3, web={"replicas": 5}), names)[0]["data"][topology.KEY]
    assert a != b
