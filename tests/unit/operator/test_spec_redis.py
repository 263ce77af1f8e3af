"""Redis builder: stages 4–5 only, one non-root pod without persistence, and its Service."""

import pytest

from scalestage.specs import redis


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_absent_before_stage_4(plan, names, stage):
    assert redis.build(plan(stage), names) == []


@pytest.mark.parametrize("stage", [4, 5])
def test_deployment_and_service(plan, names, stage):
    deployment, svc = redis.build(plan(stage), names)
    assert (deployment["kind"], deployment["metadata"]["name"]) == ("Deployment", "chirp-redis")
    assert (svc["kind"], svc["metadata"]["name"]) == ("Service", "chirp-redis")
    assert deployment["spec"]["replicas"] == 1
    assert svc["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items())


def test_runs_redis_server_as_uid_999(plan, names):
    pod = redis.build(plan(4), names)[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 999 and pod["securityContext"]["runAsNonRoot"]
    container = pod["containers"][0]
    assert container["command"] == ["redis-server"]
    assert container["image"] == "scalestage/redis:7"


def test_url_names_the_service_and_db(names):
    assert redis.url(names, 1) == "redis://chirp-redis:6379/1"
