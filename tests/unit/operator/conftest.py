"""Fixtures for the operator's unit tests: plans and built objects for any stage, no cluster.

Helpers are fixtures returning functions (test modules cannot import each other under pytest's
importlib import mode).
"""

import pytest

from scalestage import specs, stages
from scalestage.names import Names
from scalestage.specs import secrets

CREDENTIALS = {key: f"not-a-real-{key}" for key in secrets.KEYS}


@pytest.fixture
def names():
    """Names of an instance called `chirp`."""
    return Names("chirp")


@pytest.fixture
def plan():
    """plan(stage, **overrides): the resolved plan, e.g. plan(3, web={"replicas": 5})."""
    return lambda stage, **overrides: stages.resolve({"stage": stage, **overrides})


@pytest.fixture
def build_all():
    """build_all(stage, **overrides): every child of an instance `chirp` at that stage."""

    def build(stage, **overrides):
        plan = stages.resolve({"stage": stage, **overrides})
        return specs.build_all(plan, Names("chirp"), CREDENTIALS)

    return build


@pytest.fixture
def by_name():
    """by_name(manifests, kind): {name: manifest} for the manifests of one kind."""
    return lambda manifests, kind: {
        m["metadata"]["name"]: m for m in manifests if m["kind"] == kind
    }


@pytest.fixture
def env_of():
    """env_of(container): the container's env as {name: value or valueFrom}."""
    return lambda container: {
        e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])
    }
