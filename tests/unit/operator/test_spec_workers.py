"""Workers builder: Celery workers at stage 5 only."""

import pytest

from scalestage.specs import workers


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_absent_before_stage_5(plan, names, stage):
    assert workers.build(plan(stage), names) == []


def test_stage_5_runs_chirp_worker(plan, names, env_of):
    [deployment] = workers.build(plan(5, workers={"replicas": 4}), names)
    assert deployment["metadata"]["name"] == "chirp-worker"
    assert deployment["spec"]["replicas"] == 4
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["worker"]
    assert env_of(container)["CHIRP_BROKER_URL"] == "redis://chirp-redis:6379/1"
