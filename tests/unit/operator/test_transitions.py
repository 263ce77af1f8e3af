"""The walk: in place within a data layout, a data move across layouts, one stage at a time, each
step from a Ready stage; refused where nothing can be built on."""

import pytest

from scalestage import specs, stages, transitions
from scalestage.names import Names
from scalestage.specs import secrets
from scalestage.transitions import CREATE, IN_PLACE, MOVE, REFUSED, Layout


def observed_at(stage, **overrides):
    """The workloads a cluster shows after `stage` was applied."""
    plan = stages.resolve({"stage": stage, **overrides})
    return [m for m in specs.build_all(plan, Names("chirp"), secrets.credentials(None))
            if m["kind"] in ("StatefulSet", "Deployment")]


def layout_at(stage, **overrides):
    return transitions.observed_layout(observed_at(stage, **overrides))


@pytest.mark.parametrize(
    "current, desired, moves",
    [(1, 2, True), (2, 1, True), (2, 3, False), (3, 2, False), (3, 4, False), (4, 3, False),
     (4, 5, True), (5, 4, True), (1, 5, True), (2, 4, False), (3, 3, False)],
)
def test_moves_data(current, desired, moves):
    assert transitions.moves_data(current, desired) is moves


@pytest.mark.parametrize("reached, target, ahead", [
    (1, 5, [2, 3, 4, 5]), (5, 1, [4, 3, 2, 1]), (3, 3, []), (2, 4, [3, 4]), (4, 2, [3, 2])])
def test_path_walks_one_stage_at_a_time(reached, target, ahead):
    assert transitions.path(reached, target) == ahead


@pytest.mark.parametrize("stage, layout", [
    (1, Layout("monolith")), (2, Layout("single-primary")), (4, Layout("single-primary")),
    (5, Layout("sharded", 2))])
def test_observed_layout_from_data_holders(stage, layout):
    assert layout_at(stage) == layout


def test_nothing_observed_means_create_the_target_at_once(plan):
    assert transitions.observed_layout([]) is None
    step = transitions.next_step(None, plan(5), None, False)
    assert (step.action, step.stage) == (CREATE, 5)


@pytest.mark.parametrize("reached, target, expected", [
    (2, 3, (IN_PLACE, 3, None)), (3, 2, (IN_PLACE, 2, None)), (2, 4, (IN_PLACE, 3, None)),
    (4, 2, (IN_PLACE, 3, None)), (1, 2, (MOVE, 2, 1)), (1, 5, (MOVE, 2, 1)),
    (2, 1, (MOVE, 1, 2)), (4, 5, (MOVE, 5, 4)), (5, 4, (MOVE, 4, 5)), (5, 1, (MOVE, 4, 5)),
    (3, 5, (IN_PLACE, 4, None))])
def test_the_next_step_from_a_ready_stage(plan, reached, target, expected):
    step = transitions.next_step(layout_at(reached), plan(target), reached, True)
    assert (step.action, step.stage, step.source) == expected


def test_a_stage_not_ready_yet_is_finished_before_the_next_step(plan):
    step = transitions.next_step(layout_at(2), plan(5), 3, False)
    assert (step.action, step.stage) == (IN_PLACE, 3)
    assert "ready" in step.message


def test_scaling_and_idle_are_in_place(plan):
    step = transitions.next_step(layout_at(3), plan(3, web={"replicas": 9}), 3, False)
    assert (step.action, step.stage) == (IN_PLACE, 3)


def test_a_lost_status_is_inferred_from_the_data(plan):
    step = transitions.next_step(layout_at(4), plan(4), None, False)
    assert (step.action, step.stage) == (IN_PLACE, 4)
    # one primary runs, the target is 5: stage 4 is the nearest it can be, applied first
    step = transitions.next_step(layout_at(2), plan(5), None, False)
    assert (step.action, step.stage, step.source) == (IN_PLACE, 4, None)


def test_changing_the_shard_count_moves_data_between_shard_sets(plan):
    layout = layout_at(5, database={"shards": 2})
    assert layout == Layout("sharded", 2, "")
    step = transitions.next_step(layout, plan(5, database={"shards": 3}), 5, True)
    assert (step.action, step.stage, step.source) == (MOVE, 5, 5)
    assert "from 2 to 3 shards" in step.message
    same = transitions.next_step(layout, plan(5, database={"shards": 2}), 5, True)
    assert same.action == IN_PLACE


def test_the_other_shard_set_is_recognised(plan):
    b_set = observed_at(5)
    for m in b_set:
        labels = m["metadata"]["labels"]
        if labels.get("scalestage.dev/cluster", "").startswith("db-shard-"):
            labels["scalestage.dev/cluster"] = labels["scalestage.dev/cluster"].replace(
                "db-shard-", "db-b-shard-")
    assert transitions.observed_layout(b_set) == Layout("sharded", 2, "b")
    both = observed_at(5) + b_set
    assert transitions.observed_layout(both) == transitions.MIXED


def test_half_moved_data_without_a_record_is_never_built_on(plan):
    mixed = transitions.observed_layout(observed_at(1) + observed_at(2))
    assert mixed == transitions.MIXED
    assert transitions.next_step(mixed, plan(2), None, True).action == REFUSED


def test_replica_sets_alone_do_not_count_as_data():
    replicas_only = [m for m in observed_at(3) if m["metadata"]["name"].endswith("-replica")]
    assert transitions.observed_layout(replicas_only) is None
