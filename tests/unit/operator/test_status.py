"""Status: components desired/ready, phase, SPOFs and conditions from observed workloads."""

import pytest

from scalestage import stages, status
from tests.operator.expected_children import SPOFS, STAGE_NAMES

NOW, LATER = "2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z"


def workload(replicas, ready, *, generation=1, observed=1, updated=None):
    return {"metadata": {"generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "readyReplicas": ready,
                       "updatedReplicas": replicas if updated is None else updated}}


def all_ready(plan):
    return {c.name: workload(c.replicas, c.replicas) for c in stages.components(plan)}


def summary(plan, observed, previous=None, now=NOW):
    return status.summarize(plan, observed, generation=7, previous=previous, now=now)


def condition(result, kind):
    return next(c for c in result["conditions"] if c["type"] == kind)


@pytest.mark.parametrize("stage", range(1, 6))
def test_ready_when_every_component_is(plan, stage):
    p = plan(stage)
    s = summary(p, all_ready(p))
    assert s["phase"] == "Ready"
    assert condition(s, "Ready")["status"] == "True"
    assert condition(s, "Progressing")["status"] == "False"
    assert condition(s, "Degraded")["status"] == "False"
    assert s["stage"] == stage and s["stageName"] == STAGE_NAMES[stage]
    assert s["observedGeneration"] == 7
    assert s["spofs"] == SPOFS[stage]


def test_components_report_desired_and_ready(plan):
    p = plan(3)
    observed = all_ready(p) | {"web": workload(3, 1)}
    rows = {r["name"]: r for r in summary(p, observed)["components"]}
    assert rows["web"] == {"name": "web", "kind": "Deployment", "desired": 3, "ready": 1}
    assert rows["db-replica"]["ready"] == 2


def test_pending_when_nothing_runs_yet(plan):
    assert summary(plan(3), {})["phase"] == "Pending"
    p = plan(2)
    assert summary(p, {c.name: workload(c.replicas, 0) for c in stages.components(p)})["phase"] \
        == "Pending"


def test_progressing_while_rolling_out(plan):
    p = plan(3)
    observed = all_ready(p) | {"web": workload(3, 2, generation=2, observed=1)}
    s = summary(p, observed)
    assert s["phase"] == "Progressing"
    assert condition(s, "Progressing")["status"] == "True"
    assert "web 2/3" in condition(s, "Ready")["message"]


def test_progressing_while_old_pods_still_count_as_ready(plan):
    """3 -> 4 rolls web: its old pods are ready, the new one is not: not Ready yet."""
    p = plan(4)
    surging = workload(3, 3) | {"status": {"observedGeneration": 1, "readyReplicas": 3,
                                           "updatedReplicas": 1, "replicas": 4}}
    s = summary(p, all_ready(p) | {"web": surging})
    assert s["phase"] == "Progressing"
    assert condition(s, "Ready")["status"] == "False"
    old_pod_left = workload(3, 3) | {"status": {"observedGeneration": 1, "readyReplicas": 3,
                                                "updatedReplicas": 3, "replicas": 4}}
    s = summary(p, all_ready(p) | {"web": old_pod_left})
    assert s["phase"] == "Progressing"
    assert "rollout of web" in condition(s, "Ready")["message"]


def test_progressing_until_a_statefulset_runs_its_update_revision(plan):
    p = plan(3)
    replica = workload(2, 2) | {"status": {"observedGeneration": 1, "readyReplicas": 2,
                                           "updatedReplicas": 2, "replicas": 2,
                                           "currentRevision": "r1", "updateRevision": "r2"}}
    assert summary(p, all_ready(p) | {"db-replica": replica})["phase"] == "Progressing"
    replica["status"]["currentRevision"] = "r2"
    assert summary(p, all_ready(p) | {"db-replica": replica})["phase"] == "Ready"


def test_progressing_while_a_component_is_missing(plan):
    p = plan(4)
    observed = all_ready(p)
    del observed["redis"]
    assert summary(p, observed)["phase"] == "Progressing"


def test_degraded_when_rolled_out_but_short(plan):
    p = plan(3)
    s = summary(p, all_ready(p) | {"db-replica": workload(2, 1)})
    assert s["phase"] == "Degraded"
    assert condition(s, "Degraded")["status"] == "True"
    assert "db-replica 1/2" in condition(s, "Degraded")["message"]


def test_printer_column_helpers(plan):
    p = plan(4)
    s = summary(p, all_ready(p) | {"redis": workload(1, 0)})
    assert s["ready"] == "3/4"
    assert s["spofSummary"] == "db-primary, redis"
    assert summary(plan(5), {})["spofSummary"] == "db-shard-0-primary, db-shard-1-primary, redis"


def test_idle_status_is_identical(plan):
    p = plan(3)
    first = summary(p, all_ready(p), now=NOW)
    again = summary(p, all_ready(p), previous=first, now=LATER)
    assert again == first


def test_transition_time_moves_only_when_status_flips(plan):
    p = plan(3)
    ready = summary(p, all_ready(p), now=NOW)
    broken = summary(p, all_ready(p) | {"web": workload(3, 2)}, previous=ready, now=LATER)
    assert condition(broken, "Ready")["lastTransitionTime"] == LATER
    assert condition(broken, "Progressing")["lastTransitionTime"] == NOW


def test_with_condition_sets_one_and_keeps_the_rest(plan):
    p = plan(4)
    s = summary(p, all_ready(p))
    refused = status.condition("Progressing", False, "MigrationRequired", "moving data")
    out = status.with_condition(s, refused, LATER)
    assert condition(out, "Progressing")["reason"] == "MigrationRequired"
    assert condition(out, "Ready") == condition(s, "Ready")
    assert out["phase"] == s["phase"]


def test_a_taken_name_is_failed_never_ready_and_keeps_the_rest(plan):
    before = summary(plan(2), all_ready(plan(2)))
    assert before["phase"] == "Ready"
    held = status.held([("Service/chirp-web", "ScaleStage chirp (uid u-2)")], 8, before, LATER)
    assert held["phase"] == "Failed" and held["observedGeneration"] == 8
    assert held["progress"] == "name taken: Service/chirp-web"
    ready, progressing = condition(held, "Ready"), condition(held, "Progressing")
    assert (ready["status"], ready["reason"]) == ("False", "NameTaken")
    assert (progressing["status"], progressing["reason"]) == ("False", "NameTaken")
    assert ready["message"].startswith(
        "Service/chirp-web exists already, controlled by ScaleStage chirp (uid u-2); nothing is "
        "applied until it is free")
    assert ready["lastTransitionTime"] == LATER
    assert condition(held, "Degraded") == condition(before, "Degraded")  # kept as it was
    assert set(held) == {"phase", "observedGeneration", "progress", "conditions"}  # the rest stays
