"""Configuration: every stage's required variables, each error naming its variable."""

import json

import pytest

from chirp.config import (
    Architecture,
    ConfigError,
    LiveArchitecture,
    ignored_variables_warning,
    load_config,
)
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
    now = LiveArchitecture(config).current()
    assert now == Architecture(3, ARCHITECTURE)
    assert now.stage_name == "load-balanced"
    assert now.stage_title == "stage 3 (load-balanced)"


def test_without_an_architecture_the_app_names_no_stage():
    """The app keeps no table of stage names: unnamed, a stage is just its number."""
    for stage in (1, 2, 3, 4):
        extra = {"CHIRP_REDIS_URL": "redis://r/0"} if stage == 4 else {}
        config = load_config(env(CHIRP_STAGE=str(stage), CHIRP_DATABASE_URL=DB, **extra))
        now = LiveArchitecture(config).current()
        assert config.architecture is None and now.stage_name is None
        assert now.stage_title == f"stage {stage}"


def test_the_stage_comes_from_the_document_without_chirp_stage():
    """The operator gives the stage once, in the document; CHIRP_STAGE is for local runs."""
    config = load_config(env(CHIRP_DATABASE_URL=DB, CHIRP_ARCHITECTURE=json.dumps(ARCHITECTURE)))
    assert config.stage == 3


@pytest.mark.parametrize("values,variable", [
    ({"CHIRP_STAGE": "2"}, "CHIRP_STAGE"),  # the document says 3
    ({"CHIRP_ARCHITECTURE": '{"stage": 6}'}, "CHIRP_ARCHITECTURE"),
    ({"CHIRP_ARCHITECTURE": '{"stage": "3"}'}, "CHIRP_ARCHITECTURE"),
    ({"CHIRP_ARCHITECTURE": '{"stage": true}'}, "CHIRP_ARCHITECTURE"),
    ({"CHIRP_ARCHITECTURE_FILE": "/nonexistent/architecture.json"}, "CHIRP_ARCHITECTURE_FILE"),
])
def test_a_stage_that_does_not_fit_is_refused(tmp_path, values, variable):
    values = {"CHIRP_ARCHITECTURE": json.dumps(ARCHITECTURE), **values}
    if "CHIRP_ARCHITECTURE_FILE" in values:
        del values["CHIRP_ARCHITECTURE"]
    with pytest.raises(ConfigError) as error:
        load_config(env(CHIRP_DATABASE_URL=DB, **values))
    assert error.value.variable == variable


def test_the_document_from_a_file_or_from_env_not_both(tmp_path):
    path = tmp_path / "architecture.json"
    path.write_text(json.dumps(ARCHITECTURE))
    config = load_config(env(CHIRP_DATABASE_URL=DB, CHIRP_ARCHITECTURE_FILE=str(path)))
    assert (config.stage, config.architecture, config.architecture_file) == \
        (3, ARCHITECTURE, str(path))
    with pytest.raises(ConfigError, match="CHIRP_ARCHITECTURE_FILE: is set and so is"):
        load_config(env(CHIRP_DATABASE_URL=DB, CHIRP_ARCHITECTURE_FILE=str(path),
                        CHIRP_ARCHITECTURE=json.dumps(ARCHITECTURE)))
    path.write_text("")
    with pytest.raises(ConfigError, match="CHIRP_ARCHITECTURE_FILE: .* is empty"):
        load_config(env(CHIRP_DATABASE_URL=DB, CHIRP_ARCHITECTURE_FILE=str(path)))


def test_replica_urls_are_taken_from_stage_2_and_read_from_stage_3():
    """Given at stage 2 already, so stepping to stage 3 needs no new configuration (no restart)."""
    two = load_config(env(CHIRP_STAGE="2", CHIRP_DATABASE_URL=DB, CHIRP_REPLICA_URLS=DB))
    assert two.replica_urls == (DB,)
    assert [Architecture(n).reads_from_replicas for n in (1, 2, 3, 4, 5)] == \
        [False, False, True, True, True]


def write_document(path, **changes):
    """Replace the file the way the kubelet updates a mounted ConfigMap: a new file, renamed."""
    new = path.with_suffix(".new")
    new.write_text(json.dumps({**ARCHITECTURE, **changes}))
    new.replace(path)


def test_the_live_architecture_follows_its_file(tmp_path, caplog):
    path = tmp_path / "architecture.json"
    write_document(path, stage=2, stageName="separate-db")
    config = load_config(env(CHIRP_DATABASE_URL=DB, CHIRP_ARCHITECTURE_FILE=str(path)))
    live = LiveArchitecture(config)
    assert (config.stage, live.current().stage, live.current().reads_from_replicas) == \
        (2, 2, False)
    write_document(path)
    assert live.current() == Architecture(3, ARCHITECTURE)
    assert live.current().reads_from_replicas and config.stage == 2  # the start's, for wiring
    path.write_text("{not json")  # a bad version: logged, the last good one kept
    assert live.current() == Architecture(3, ARCHITECTURE)
    assert "keeping the architecture document read before" in caplog.text
    path.unlink()  # gone for a moment: the last good one kept
    assert live.current() == Architecture(3, ARCHITECTURE)
    write_document(path, stage=2, stageName="separate-db")
    assert live.current().stage_title == "stage 2 (separate-db)"


def test_without_a_file_the_document_of_the_start_stays():
    config = load_config(env(CHIRP_DATABASE_URL=DB, CHIRP_ARCHITECTURE=json.dumps(ARCHITECTURE)))
    live = LiveArchitecture(config)
    assert live.current() is live.current()
    assert live.current() == Architecture(3, ARCHITECTURE)


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
