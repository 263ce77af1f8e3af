"""The front door: Service `<instance>` on port 80, the one address users reach at every stage.

It points at whatever faces users at this stage: the monolith pod, the web pods, or the edge cache.
Its ClientIP affinity is the stage's `sticky_sessions`, the same flag as the web Service's (stages
2–3, where sessions live in the web process): both lead to the same web pods and must agree.
"""

from __future__ import annotations

from ..names import Names
from ..stages import MONOLITH, Plan
from . import app, edge, monolith, web
from .common import Manifest, service


def target(plan: Plan) -> tuple[str, int]:
    """(component, container port) behind the front door."""
    if plan.data_layout == MONOLITH:
        return monolith.COMPONENT, app.PORT
    if plan.stage.edge:
        return edge.COMPONENT, edge.PORT
    return web.COMPONENT, app.PORT


def build(plan: Plan, names: Names) -> list[Manifest]:
    component, port = target(plan)
    return [
        service(names, names.front_door, "front-door", names.selector(component), 80, port,
                sticky=plan.sticky_sessions, node_port=plan.front_door_node_port)
    ]
