"""Configuration: every stage's required variables, each error naming its variable."""

import json

import pytest

from chirp.config import ConfigError, ignored_variables_warning, load_config
from chirp.shards import ShardMap

SECRET = "0123456789abcdef"
DB = "postgresql://chirp@chirp-db-rw:5432/chirp"


def env(**values):
    return {"CHIRP_SECRET_KEY": SECRET, **values}


@pytest.mark.parametrize("values,variable", [
    ({}, "CHIRP_STAGE"),
    ({"CHIRP_STAGE": "0"}, "CHIRP_STAGE"),
    ({"CHIRP_STAGE": "six"}, "CHIRP_STAGE"),
    ({"CHIRP_STAGE": "1"}, "CHIRP_DATABASE_URL"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": "mysql://x@db/chirp"}, "CHIRP_DATABASE_URL"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": "postgresql://chirp:hunter2@db/chirp"},
     "CHIRP_DATABASE_URL"),
    ({"CHIRP_STAGE": "3", "CHIRP_DATABASE_URL": DB, "CHIRP_REPLICA_URLS": f"{DB},"},
     "CHIRP_REPLICA_URLS"),
    ({"CHIRP_STAGE": "4", "CHIRP_DATABASE_URL": DB}, "CHIRP_REDIS_URL"),
    ({"CHIRP_STAGE": "4", "CHIRP_DATABASE_URL": DB, "CHIRP_REDIS_URL": "http://redis"},
     "CHIRP_REDIS_URL"),
    ({"CHIRP_STAGE": "5", "CHIRP_REDIS_URL": "redis://r:6379/0"}, "CHIRP_SHARD_URLS"),
    ({"CHIRP_STAGE": "5", "CHIRP_SHARD_URLS": f"{DB},{DB}", "CHIRP_REDIS_URL": "redis://r/0"},
     "CHIRP_BROKER_URL"),
    ({"CHIRP_STAGE": "5", "CHIRP_SHARD_URLS": f"{DB},{DB}", "CHIRP_SHARD_REPLICA_URLS": DB,
      "CHIRP_REDIS_URL": "redis://r/0", "CHIRP_BROKER_URL": "redis://r/1"},
     "CHIRP_SHARD_REPLICA_URLS"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_SESSION_BACKEND": "cookie"},
     "CHIRP_SESSION_BACKEND"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_SESSION_BACKEND": "redis"},
     "CHIRP_SESSION_BACKEND"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_ARCHITECTURE": "{nope"},
     "CHIRP_ARCHITECTURE"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_ARCHITECTURE": "[1]"},
     "CHIRP_ARCHITECTURE"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_ARCHITECTURE": '{"stageName": 3}'},
     "CHIRP_ARCHITECTURE"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_ARCHITECTURE": '{"components": {}}'},
     "CHIRP_ARCHITECTURE"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_ARCHITECTURE": '{"spofs": [1]}'},
     "CHIRP_ARCHITECTURE"),
])
def test_bad_configuration_names_the_variable(values, variable):
    with pytest.raises(ConfigError) as error:
        load_config(env(**values))
    assert error.value.variable == variable
    assert str(error.value).startswith(f"{variable}: ")


def test_short_secret_is_refused():
    with pytest.raises(ConfigError, match="CHIRP_SECRET_KEY"):
        load_config({"CHIRP_STAGE": "1", "CHIRP_SECRET_KEY": "short", "CHIRP_DATABASE_URL": DB})


def test_stage_defaults():
    two = load_config(env(CHIRP_STAGE="2", CHIRP_DATABASE_URL=DB, POD_NAME="web-0"))
    assert (two.session_backend, two.cache_enabled, two.sharded, two.pod_name) == \
        ("process", False, False, "web-0")
    four = load_config(env(CHIRP_STAGE="4", CHIRP_DATABASE_URL=DB, CHIRP_REDIS_URL="redis://r/0",
                           CHIRP_REPLICA_URLS=f"{DB}, {DB}"))
    assert four.session_backend == "redis" and four.cache_enabled and len(four.replica_urls) == 2


def test_stage_5_shards_and_their_replicas():
    config = load_config(env(CHIRP_STAGE="5",
                             CHIRP_SHARD_URLS="postgresql://c@s0/c,postgresql://c@s1/c",
                             CHIRP_SHARD_REPLICA_URLS="postgresql://c@r0/c,postgresql://c@r1/c",
                             CHIRP_REDIS_URL="redis://r/0", CHIRP_BROKER_URL="redis://r/1"))
    shard_map = ShardMap(config)
    assert [s.primary_url for s in shard_map.shards] == ["postgresql://c@s0/c", "postgresql://c@s1/c"]
    assert shard_map.shards[1].replica_urls == ("postgresql://c@r1/c",)
    assert shard_map.databases() == [("shard-0", "postgresql://c@s0/c"),
                                     ("shard-0-replica-1", "postgresql://c@r0/c"),
                                     ("shard-1", "postgresql://c@s1/c"),
                                     ("shard-1-replica-1", "postgresql://c@r1/c")]


ARCHITECTURE = {"stage": 3, "stageName": "load-balanced",
                "components": [{"name": "web", "kind": "Deployment", "replicas": 3}],
                "spofs": ["db-primary"]}


def test_the_architecture_and_the_stage_name_come_from_the_operator():
    config = load_config(env(CHIRP_STAGE="3", CHIRP_DATABASE_URL=DB,
                             CHIRP_ARCHITECTURE=json.dumps(ARCHITECTURE)))
    assert config.architecture == ARCHITECTURE
    assert config.stage_name == "load-balanced"
    assert config.stage_title == "stage 3 (load-balanced)"


def test_without_an_architecture_the_app_names_no_stage():
    """The app keeps no table of stage names: unnamed, a stage is just its number."""
    for stage in (1, 2, 3, 4):
        extra = {"CHIRP_REDIS_URL": "redis://r/0"} if stage == 4 else {}
        config = load_config(env(CHIRP_STAGE=str(stage), CHIRP_DATABASE_URL=DB, **extra))
        assert config.architecture is None and config.stage_name is None
        assert config.stage_title == f"stage {stage}"


def test_unknown_chirp_variables_are_ignored_and_named_in_a_warning():
    """Ignored, not refused: Kubernetes injects service links (CHIRP_SERVICE_HOST, CHIRP_REDIS_PORT,
    ...) for Services named chirp-* into every pod; refusing them would stop every pod. Variables
    that are not service links (a typo, a retired name) are named in a warning."""
    base = env(CHIRP_STAGE="3", CHIRP_DATABASE_URL=DB)
    unknown = {
        # service links: silently ignored
        "CHIRP_SERVICE_HOST": "10.96.0.10", "CHIRP_SERVICE_PORT": "80", "CHIRP_PORT": "tcp://x:80",
        "CHIRP_REDIS_PORT_6379_TCP_ADDR": "10.96.0.11", "CHIRP_DB_RW_SERVICE_PORT_POSTGRES": "5432",
        # a typo and a retired variable: ignored, but named
        "CHIRP_REPLICA_URL": "postgresql://chirp@elsewhere/chirp", "CHIRP_DRAIN_SECONDS": "5",
    }
    config = load_config({**base, **unknown})
    assert config.replace(ignored_variables=()) == load_config(base)
    assert config.ignored_variables == ("CHIRP_DRAIN_SECONDS", "CHIRP_REPLICA_URL")
    warning = ignored_variables_warning(config)
    assert "CHIRP_REPLICA_URL" in warning and "CHIRP_SERVICE_HOST" not in warning
    assert "CHIRP_DRAIN_SECONDS (draining is the pod's preStop sleep" in warning
    assert ignored_variables_warning(load_config(base)) is None
