"""Chirp's environment per stage: exactly the variables docs/contracts.md lists for that stage."""

import pytest

from scalestage.specs import app

# No CHIRP_STAGE: the stage is the architecture document's (CHIRP_ARCHITECTURE, or the file).
ALWAYS = {"CHIRP_SECRET_KEY", "PGPASSWORD", "CHIRP_SESSION_BACKEND", "CHIRP_ARCHITECTURE",
          "POD_NAME", "NODE_NAME"}


@pytest.mark.parametrize(
    "stage, extra",
    [
        (1, {"CHIRP_DATABASE_URL"}),
        (2, {"CHIRP_DATABASE_URL", "CHIRP_REPLICA_URLS"}),  # unused until stage 3: no restart
        (3, {"CHIRP_DATABASE_URL", "CHIRP_REPLICA_URLS"}),
        (4, {"CHIRP_DATABASE_URL", "CHIRP_REPLICA_URLS", "CHIRP_REDIS_URL"}),
        (5, {"CHIRP_SHARD_URLS", "CHIRP_SHARD_REPLICA_URLS", "CHIRP_REDIS_URL",
             "CHIRP_BROKER_URL"}),
    ],
)
def test_variables_per_stage(plan, names, stage, extra):
    assert {e["name"] for e in app.chirp_env(plan(stage), names)} == ALWAYS | extra


def env(plan, names, stage, **overrides):
    return {e["name"]: e.get("value", e.get("valueFrom"))
            for e in app.chirp_env(plan(stage, **overrides), names)}


def test_monolith_talks_to_postgres_on_localhost(plan, names):
    assert env(plan, names, 1)["CHIRP_DATABASE_URL"] == "postgresql://chirp@localhost:5432/chirp"


@pytest.mark.parametrize("stage", [2, 3])
def test_stages_2_and_3_are_given_the_ro_service(plan, names, stage):
    e = env(plan, names, stage)
    assert e["CHIRP_DATABASE_URL"] == "postgresql://chirp@chirp-db-rw:5432/chirp"
    assert e["CHIRP_REPLICA_URLS"] == "postgresql://chirp@chirp-db-ro:5432/chirp"
    assert e["CHIRP_SESSION_BACKEND"] == "process"


def test_stages_2_and_3_give_the_same_environment(plan, names):
    for live in (False, True):
        assert app.chirp_env(plan(2), names, live_architecture=live) == \
            app.chirp_env(plan(3), names, live_architecture=live)


def test_live_architecture_comes_from_the_mounted_file(plan, names):
    e = {x["name"]: x.get("value", x.get("valueFrom"))
         for x in app.chirp_env(plan(3), names, live_architecture=True)}
    assert e["CHIRP_ARCHITECTURE_FILE"] == "/etc/chirp/architecture/architecture.json"
    assert "CHIRP_ARCHITECTURE" not in e


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


def test_secrets_and_architecture_by_reference(plan, names):
    e = env(plan, names, 4)
    assert e["PGPASSWORD"] == {"secretKeyRef": {"name": "chirp-credentials", "key": "password"}}
    assert e["CHIRP_SECRET_KEY"]["secretKeyRef"]["key"] == "secret-key"
    assert e["CHIRP_ARCHITECTURE"]["configMapKeyRef"] == {"name": "chirp-architecture",
                                                          "key": "architecture.json"}


def test_no_drain_variable_the_platform_drains(plan, names):
    for stage in range(1, 6):
        assert "CHIRP_DRAIN_SECONDS" not in env(plan, names, stage)


def test_web_container_has_probes_and_port(plan, names):
    c = app.container(plan(3), names, "web")
    assert c["args"] == ["web"]
    assert c["ports"][0]["containerPort"] == 8080
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_web_stops_with_a_prestop_sleep_then_sigterm(plan, names):
    c = app.container(plan(3), names, "web")
    assert c["lifecycle"] == {"preStop": {"sleep": {"seconds": app.DRAIN_SECONDS}}}
    # SIGTERM comes after the sleep; gunicorn then finishes in-flight requests
    assert app.TERMINATION_GRACE_SECONDS > app.DRAIN_SECONDS + app.GUNICORN_GRACEFUL_SECONDS


def test_worker_and_migrate_have_no_ports_and_no_prestop(plan, names):
    for command in ("worker", "migrate"):
        c = app.container(plan(5), names, command)
        assert c["args"][0] == command
        assert not {"ports", "readinessProbe", "lifecycle"} & set(c)


def test_migrate_waits_for_the_database_itself(plan, names):
    c = app.container(plan(2), names, "migrate")
    assert c["args"] == ["migrate", "--wait", "300"]
    for command in ("web", "worker", "migrate"):  # all run the image's entry point, `chirp`
        assert "command" not in app.container(plan(5), names, command)
