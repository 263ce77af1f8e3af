"""Postgres builder: primaries, replicas bootstrapped from the -rw Service, -rw/-ro Services."""

from scalestage.names import HOLDS_DATA
from scalestage.specs import postgres


def objects(plan, names, stage, **overrides):
    built = postgres.build(plan(stage, **overrides), names)
    return {(m["kind"], m["metadata"]["name"]): m for m in built}


def test_no_postgres_objects_at_stage_1(plan, names):
    assert postgres.build(plan(1), names) == []


def test_stage_2_has_one_primary_and_its_services(plan, names):
    """The -ro Service too, leading to the primary: the web pods know its URL from stage 2 on."""
    objs = objects(plan, names, 2)
    assert set(objs) == {("StatefulSet", "chirp-db-primary"), ("Service", "chirp-db-rw"),
                         ("Service", "chirp-db-ro")}
    assert objs["Service", "chirp-db-ro"]["spec"]["selector"] == \
        objs["Service", "chirp-db-rw"]["spec"]["selector"]
    assert objs["Service", "chirp-db-ro"]["spec"]["selector"]["scalestage.dev/role"] == "primary"


def test_stage_3_adds_replicas_and_the_ro_service(plan, names):
    objs = objects(plan, names, 3)
    assert set(objs) == {("StatefulSet", "chirp-db-primary"), ("Service", "chirp-db-rw"),
                         ("StatefulSet", "chirp-db-replica"), ("Service", "chirp-db-ro")}
    assert objs["StatefulSet", "chirp-db-replica"]["spec"]["replicas"] == 2
    assert objs["Service", "chirp-db-ro"]["spec"]["selector"]["scalestage.dev/role"] == "replica"


def test_stage_5_builds_a_primary_and_replica_per_shard(plan, names):
    objs = objects(plan, names, 5, database={"shards": 3})
    for i in range(3):
        assert ("StatefulSet", f"chirp-db-shard-{i}-primary") in objs
        assert ("StatefulSet", f"chirp-db-shard-{i}-replica") in objs
        assert ("Service", f"chirp-db-shard-{i}-rw") in objs
        assert ("Service", f"chirp-db-shard-{i}-ro") in objs
    assert len(objs) == 12


def test_services_select_only_their_clusters_role(plan, names):
    objs = objects(plan, names, 5)
    rw0 = objs["Service", "chirp-db-shard-0-rw"]["spec"]["selector"]
    ro1 = objs["Service", "chirp-db-shard-1-ro"]["spec"]["selector"]
    assert rw0["scalestage.dev/cluster"] == "db-shard-0" and rw0["scalestage.dev/role"] == "primary"
    assert ro1["scalestage.dev/cluster"] == "db-shard-1" and ro1["scalestage.dev/role"] == "replica"
    for sts in (m for (kind, _), m in objs.items() if kind == "StatefulSet"):
        template_labels = sts["spec"]["template"]["metadata"]["labels"]
        assert sts["spec"]["selector"]["matchLabels"].items() <= template_labels.items()


def test_replicas_bootstrap_from_their_primary_with_pg_basebackup(plan, names, env_of):
    sts = objects(plan, names, 5)["StatefulSet", "chirp-db-shard-1-replica"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["PRIMARY_HOST"] == "chirp-db-shard-1-rw"
    script = container["command"][-1]
    assert "pg_basebackup" in script and " -R " in script
    assert "initdb" not in script


def test_primary_runs_initdb_once_and_execs_postgres(plan, names):
    sts = objects(plan, names, 2)["StatefulSet", "chirp-db-primary"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    script = container["command"][-1]
    assert container["command"][:2] == ["sh", "-c"]
    assert 'if [ ! -s "$PGDATA/PG_VERSION" ]' in script and "initdb" in script
    assert "exec postgres" in script.splitlines()[-1]
    assert "pg_basebackup" not in script


def test_passwords_come_from_the_secret_only(plan, names, env_of):
    sts = objects(plan, names, 3)["StatefulSet", "chirp-db-replica"]
    env = env_of(sts["spec"]["template"]["spec"]["containers"][0])
    for var in ("POSTGRES_PASSWORD", "REPLICATION_PASSWORD"):
        assert env[var]["secretKeyRef"]["name"] == "chirp-credentials"


def test_pods_run_as_uid_999_non_root(plan, names):
    for (kind, _), m in objects(plan, names, 3).items():
        if kind != "StatefulSet":
            continue
        pod = m["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 999
        assert pod["securityContext"]["fsGroup"] == 999
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_only_primaries_hold_data(plan, names):
    objs = objects(plan, names, 3)
    assert objs["StatefulSet", "chirp-db-primary"]["metadata"]["labels"][HOLDS_DATA] == "true"
    assert objs["StatefulSet", "chirp-db-replica"]["metadata"]["labels"][HOLDS_DATA] == "false"


def test_storage_override_reaches_the_volume_claims(plan, names):
    sts = objects(plan, names, 2, database={"storage": "7Gi"})["StatefulSet", "chirp-db-primary"]
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "7Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_image_override(plan, names):
    objs = objects(plan, names, 2, images={"postgres": "postgres:15"})
    sts = objs["StatefulSet", "chirp-db-primary"]
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "postgres:15"


def test_url_has_no_password():
    assert postgres.url("chirp-db-rw") == "postgresql://chirp@chirp-db-rw:5432/chirp"


def test_a_clusters_primary_and_replicas_spread_over_nodes(plan, names):
    objs = objects(plan, names, 5)
    for i in range(2):
        for role in ("primary", "replica"):
            pod = objs["StatefulSet", f"chirp-db-shard-{i}-{role}"]["spec"]["template"]
            (rule,) = pod["spec"]["topologySpreadConstraints"]
            assert rule["whenUnsatisfiable"] == "ScheduleAnyway"  # soft: one node still works
            # the same group for both roles of this shard, and only this shard
            assert rule["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
            assert rule["labelSelector"]["matchLabels"]["scalestage.dev/cluster"] == f"db-shard-{i}"
            assert "scalestage.dev/role" not in rule["labelSelector"]["matchLabels"]
