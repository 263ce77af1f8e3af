"""Chirp's environment per stage: exactly the variables docs/contracts.md lists for that stage."""

import json

import pytest

from scalestage.specs import app, topology

ALWAYS = {"CHIRP_STAGE", "CHIRP_SECRET_KEY", "PGPASSWORD", "CHIRP_SESSION_BACKEND",
          "CHIRP_TOPOLOGY", "POD_NAME", "NODE_NAME"}


@pytest.mark.parametrize(
    "stage, extra",
    [
        (1, {"CHIRP_DATABASE_URL"}),
        (2, {"CHIRP_DATABASE_URL"}),
        (3, {"CHIRP_DATABASE_URL", "CHIRP_REPLICA_URLS"}),
        (4, {"CHIRP_DATABASE_URL", "CHIRP_REPLICA_URLS", "CHIRP_REDIS_URL"}),
        (5, {"CHIRP_SHARD_URLS", "CHIRP_SHARD_REPLICA_URLS", "CHIRP_REDIS_URL", "CHIRP_BROKER_URL"}),
    ],
)
def test_variables_per_stage(plan, names, stage, extra):
    assert {e["name"] for e in app.chirp_env(plan(stage), names)} == ALWAYS | extra


def env(plan, names, stage, **overrides):
    return {e["name"]: e.get("value", e.get("valueFrom"))
            for e in app.chirp_env(plan(stage, **overrides), names)}


def test_monolith_talks_to_postgres_on_localhost(plan, names):
    assert env(plan, names, 1)["CHIRP_DATABASE_URL"] == "postgresql://chirp@localhost:5432/chirp"


def test_stage_3_reads_from_the_ro_service(plan, names):
    e = env(plan, names, 3)
    assert e["CHIRP_DATABASE_URL"] == "postgresql://chirp@chirp-db-rw:5432/chirp"
    assert e["CHIRP_REPLICA_URLS"] == "postgresql://chirp@chirp-db-ro:5432/chirp"
    assert e["CHIRP_SESSION_BACKEND"] == "process"


def test_stage_4_sessions_and_cache_in_redis(plan, names):
    e = env(plan, names, 4)
    assert e["CHIRP_REDIS_URL"] == "redis://chirp-redis:6379/0"
    assert e["CHIRP_SESSION_BACKEND"] == "redis"


def test_stage_5_shard_urls_in_shard_order(plan, names):
    e = env(plan, names, 5, database={"shards": 3})
    assert e["CHIRP_SHARD_URLS"].split(",") == [
        f"postgresql://chirp@chirp-db-shard-{i}-rw:5432/chirp" for i in range(3)]
    assert e["CHIRP_SHARD_REPLICA_URLS"].split(",") == [
        f"postgresql://chirp@chirp-db-shard-{i}-ro:5432/chirp" for i in range(3)]
    assert e["CHIRP_BROKER_URL"] == "redis://chirp-redis:6379/1"


def test_stage_5_without_replicas_has_no_replica_urls(plan, names):
    assert "CHIRP_SHARD_REPLICA_URLS" not in env(plan, names, 5, database={"readReplicas": 0})


def test_secrets_and_topology_by_reference(plan, names):
    e = env(plan, names, 4)
    assert e["PGPASSWORD"] == {"secretKeyRef": {"name": "chirp-credentials", "key": "password"}}
    assert e["CHIRP_SECRET_KEY"]["secretKeyRef"]["key"] == "secret-key"
    assert e["CHIRP_TOPOLOGY"]["configMapKeyRef"] == {"name": "chirp-topology",
                                                      "key": topology.KEY}


def test_web_container_has_probes_and_port(plan, names):
    c = app.container(plan(3), names, "web")
    assert c["args"] == ["web"]
    assert c["ports"][0]["containerPort"] == 8080
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_worker_and_migrate_have_no_ports(plan, names):
    for command in ("worker", "migrate"):
        c = app.container(plan(5), names, command)
        assert c["args"] == [command] and "ports" not in c and "readinessProbe" not in c


def test_migrate_retries_until_the_database_answers(plan, names):
    c = app.container(plan(2), names, "migrate")
    assert c["command"][:2] == ["sh", "-c"] and c["args"] == ["migrate"]
    assert 'until chirp "$@"' in c["command"][2]
    assert "command" not in app.container(plan(2), names, "web")  # the image's entry point


def test_topology_document_matches_the_contract(plan):
    doc = topology.document(plan(3))
    assert doc["stage"] == 3 and doc["stageName"] == "load-balanced"
    assert {"name": "web", "kind": "Deployment", "replicas": 3} in doc["components"]
    assert doc["spofs"] == ["db-primary"]
    json.dumps(doc)
