"""The data move's Jobs: deterministic names, the app's `chirp move` with Service URLs, a refusal
fails the Job at once, anything else gets a new pod."""

from dataclasses import replace

import pytest

from scalestage.specs import jobs


def test_names_are_deterministic_so_a_restarted_operator_finds_its_job(plan, names):
    job = jobs.move_job(names, plan(4), plan(5), "run")
    assert job["metadata"]["name"] == "chirp-move-4-5x2-run"  # stage 5 with 2 shards
    assert job == jobs.move_job(names, plan(4), plan(5), "run")


def test_two_reshards_in_a_row_never_share_a_job(plan, names):
    two, three_b = plan(5), replace(plan(5, database={"shards": 3}), shard_set="b")
    assert jobs.job_name(names, two, three_b, "run") == "chirp-move-5x2-5x3b-run"
    assert jobs.job_name(names, three_b, plan(5), "run") == "chirp-move-5x3b-5x2-run"


@pytest.mark.parametrize(("source", "target", "urls"), [
    (1, 2, ("chirp-monolith-db", "chirp-db-rw")),
    (2, 1, ("chirp-db-rw", "chirp-monolith-db")),
    (5, 4, ("chirp-db-shard-0-rw,chirp-db-shard-1-rw", "chirp-db-rw")),
])
def test_the_move_dials_service_urls(plan, names, source, target, urls):
    container = jobs.move_job(names, plan(source), plan(target), "complete")[
        "spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["move", "complete"]
    hosts = [",".join(url.split("@")[1].split(":")[0] for url in arg.split(","))
             for arg in (container["args"][3], container["args"][5])]
    assert tuple(hosts) == urls
    assert [e["name"] for e in container["env"]] == ["PGPASSWORD"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "chirp-credentials"


def test_a_refusal_fails_the_job_and_a_killed_pod_is_retried(plan, names):
    spec = jobs.move_job(names, plan(1), plan(2), "run")["spec"]
    assert spec["backoffLimit"] >= 5
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    fail, ignore = spec["podFailurePolicy"]["rules"]
    assert fail["action"] == "FailJob" and fail["onExitCodes"]["values"] == [2]
    assert ignore["action"] == "Ignore"
