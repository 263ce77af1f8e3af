"""Transitions: in place within a data layout, refused (needs a migration) across layouts."""

import pytest

from scalestage import specs, stages, transitions
from scalestage.names import Names
from scalestage.specs import secrets
from scalestage.transitions import CREATE, IN_PLACE, REFUSED, Layout


def observed_at(stage, **overrides):
    """The workloads a cluster shows after `stage` was applied."""
    plan = stages.resolve({"stage": stage, **overrides})
    return [m for m in specs.build_all(plan, Names("chirp"), secrets.credentials(None))
            if m["kind"] in ("StatefulSet", "Deployment")]


@pytest.mark.parametrize(
    "current, desired, moves",
    [(1, 2, True), (2, 1, True), (2, 3, False), (3, 2, False), (3, 4, False), (4, 3, False),
     (4, 5, True), (5, 4, True), (1, 5, True), (2, 4, False), (3, 3, False)],
)
def test_moves_data(current, desired, moves):
    assert transitions.moves_data(current, desired) is moves


@pytest.mark.parametrize("stage, layout", [
    (1, Layout("monolith")), (2, Layout("single-primary")), (4, Layout("single-primary")),
    (5, Layout("sharded", 2))])
def test_observed_layout_from_data_holders(stage, layout):
    assert transitions.observed_layout(observed_at(stage)) == layout


def test_nothing_observed_means_create(plan):
    assert transitions.observed_layout([]) is None
    assert transitions.decide(None, plan(4)).action == CREATE


@pytest.mark.parametrize("path", [(2, 3), (3, 4), (4, 3), (3, 2), (2, 4), (4, 2)])
def test_in_place_within_one_primary(plan, path):
    current, desired = path
    layout = transitions.observed_layout(observed_at(current))
    decision = transitions.decide(layout, plan(desired), current)
    assert decision.action == IN_PLACE


@pytest.mark.parametrize("path", [(1, 2), (2, 1), (4, 5), (5, 4), (1, 3), (5, 1)])
def test_refused_across_layouts_with_a_clear_message(plan, path):
    current, desired = path
    layout = transitions.observed_layout(observed_at(current))
    decision = transitions.decide(layout, plan(desired), current)
    assert decision.action == REFUSED and decision.reason == "MigrationRequired"
    assert f"from stage {current}" in decision.message and f"to stage {desired}" in decision.message
    assert "nothing was changed" in decision.message


def test_changing_the_shard_count_moves_data(plan):
    layout = transitions.observed_layout(observed_at(5, database={"shards": 2}))
    assert transitions.decide(layout, plan(5, database={"shards": 3}), 5).action == REFUSED
    assert transitions.decide(layout, plan(5, database={"shards": 2}), 5).action == IN_PLACE


def test_scaling_in_place(plan):
    layout = transitions.observed_layout(observed_at(3))
    assert transitions.decide(layout, plan(3, web={"replicas": 9}), 3).action == IN_PLACE


def test_half_moved_data_is_never_built_on(plan):
    mixed = observed_at(1) + observed_at(2)
    layout = transitions.observed_layout(mixed)
    assert layout == Layout("mixed")
    assert transitions.decide(layout, plan(2), None).action == REFUSED


def test_replica_sets_alone_do_not_count_as_data():
    replicas_only = [m for m in observed_at(3) if m["metadata"]["name"].endswith("-replica")]
    assert transitions.observed_layout(replicas_only) is None
