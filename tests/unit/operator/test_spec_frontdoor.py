"""Front door: Service `<instance>` pointing at whatever faces users at this stage."""

import pytest

from scalestage.names import COMPONENT
from scalestage.specs import frontdoor


@pytest.mark.parametrize(
    "stage, component, port, affinity",
    [(1, "monolith", 8080, "None"), (2, "web", 8080, "ClientIP"), (3, "web", 8080, "ClientIP"),
     (4, "web", 8080, "None"), (5, "edge", 8080, "None")],
)
def test_points_at_the_user_facing_component(plan, names, stage, component, port, affinity):
    [svc] = frontdoor.build(plan(stage), names)
    assert svc["metadata"]["name"] == "chirp"
    assert svc["spec"]["selector"][COMPONENT] == component
    assert svc["spec"]["ports"][0] == {"name": "main", "port": 80, "targetPort": port,
                                       "protocol": "TCP"}
    assert svc["spec"]["sessionAffinity"] == affinity
    assert svc["spec"]["type"] == "ClusterIP"  # explicit, so removing a node port switches it off


@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5])
def test_a_node_port_opens_the_front_door_on_every_node(plan, names, stage):
    [svc] = frontdoor.build(plan(stage, frontDoor={"nodePort": 30080}), names)
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"][0]["nodePort"] == 30080
    assert svc["spec"]["ports"][0]["port"] == 80
