"""Monolith builder: stage 1's single pod, Chirp plus Postgres on one volume."""

import pytest

from scalestage.names import HOLDS_DATA
from scalestage.specs import monolith


@pytest.mark.parametrize("stage", [2, 3, 4, 5])
def test_absent_after_stage_1(plan, names, stage):
    assert monolith.build(plan(stage), names) == []


def test_one_statefulset_of_one_pod_holding_data(plan, names):
    sts, _ = monolith.build(plan(1), names)
    assert (sts["kind"], sts["metadata"]["name"]) == ("StatefulSet", "chirp-monolith")
    assert sts["spec"]["replicas"] == 1
    assert sts["metadata"]["labels"][HOLDS_DATA] == "true"
    assert len(sts["spec"]["volumeClaimTemplates"]) == 1


def test_postgres_is_a_native_sidecar_started_before_migrate(plan, names):
    pod = monolith.build(plan(1), names)[0]["spec"]["template"]["spec"]
    database, migrate = pod["initContainers"]
    assert database["name"] == "postgres" and database["restartPolicy"] == "Always"
    assert "startupProbe" in database
    assert migrate["args"][0] == "migrate"
    assert [c["args"] for c in pod["containers"]] == [["web"]]


def test_containers_run_non_root_with_their_own_uids(plan, names):
    pod = monolith.build(plan(1), names)[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    uids = {c["name"]: c["securityContext"]["runAsUser"]
            for c in pod["initContainers"] + pod["containers"]}
    assert uids["postgres"] == 999 and uids["web"] != 0 and uids["migrate"] != 0


def test_web_drains_like_the_web_tier(plan, names):
    pod = monolith.build(plan(1), names)[0]["spec"]["template"]["spec"]
    [web] = pod["containers"]
    sleep = web["lifecycle"]["preStop"]["sleep"]["seconds"]
    # the sleep, then gunicorn's 30 s graceful stop; Postgres (a sidecar) stops after the web
    assert pod["terminationGracePeriodSeconds"] > sleep + 30
    assert all("lifecycle" not in c for c in pod["initContainers"])


def test_app_uses_localhost(plan, names, env_of):
    pod = monolith.build(plan(1), names)[0]["spec"]["template"]["spec"]
    assert "@localhost:5432" in env_of(pod["containers"][0])["CHIRP_DATABASE_URL"]


def test_its_database_has_a_service_a_data_move_dials(plan, names):
    sts, svc = monolith.build(plan(1), names)
    assert (svc["kind"], svc["metadata"]["name"]) == ("Service", "chirp-monolith-db")
    assert svc["spec"]["ports"][0]["port"] == svc["spec"]["ports"][0]["targetPort"] == 5432
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
