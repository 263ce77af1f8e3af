"""Configuration: every stage's required variables, each error naming its variable."""

import pytest

from chirp.config import ConfigError, load_config
from chirp.topology import Topology, default_topology

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
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_TOPOLOGY": "{nope"}, "CHIRP_TOPOLOGY"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_TOPOLOGY": "[1]"}, "CHIRP_TOPOLOGY"),
    ({"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": DB, "CHIRP_DRAIN_SECONDS": "soon"},
     "CHIRP_DRAIN_SECONDS"),
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
    config = load_config(env(CHIRP_STAGE="5", CHIRP_SHARD_URLS="postgresql://c@s0/c,postgresql://c@s1/c",
                             CHIRP_SHARD_REPLICA_URLS="postgresql://c@r0/c,postgresql://c@r1/c",
                             CHIRP_REDIS_URL="redis://r/0", CHIRP_BROKER_URL="redis://r/1"))
    shards = Topology(config).shards
    assert [s.primary_url for s in shards] == ["postgresql://c@s0/c", "postgresql://c@s1/c"]
    assert shards[1].replica_urls == ("postgresql://c@r1/c",)


def test_topology_from_the_operator_wins_else_a_default_per_stage():
    given = '{"stage":3,"stageName":"load-balanced","components":[],"spofs":["db-primary"]}'
    config = load_config(env(CHIRP_STAGE="3", CHIRP_DATABASE_URL=DB, CHIRP_TOPOLOGY=given))
    assert config.topology["spofs"] == ["db-primary"]
    for stage, spofs in ((2, ["web", "db"]), (3, ["db-primary"]), (4, ["db-primary", "redis"])):
        extra = {"CHIRP_REDIS_URL": "redis://r/0"} if stage == 4 else {}
        picture = default_topology(load_config(env(CHIRP_STAGE=str(stage), CHIRP_DATABASE_URL=DB,
                                                   **extra)))
        assert picture["spofs"] == spofs and picture["stage"] == stage
