"""Postgres: per cluster (`db`, or `db-shard-N` at stage 5) a primary StatefulSet, an optional
read-replica StatefulSet bootstrapped with pg_basebackup, and `-rw` / `-ro` Services.

The pods get an explicit script instead of an image entrypoint, so our scalestage/postgres image and
the official postgres image behave the same (both have the binaries on PATH and uid 999).
"""

from __future__ import annotations

from typing import Any

from ..names import CLUSTER, HOLDS_DATA, ROLE, Names
from ..stages import Plan, db_clusters
from . import secrets
from .common import (Manifest, container_security, env, env_from_secret, metadata, pod_security,
                     service, spread)

POSTGRES_UID = 999
PORT = 5432
USER = "chirp"
DATABASE = "chirp"
DATA_MOUNT = "/var/lib/postgresql/data"
# A subdirectory: a fresh volume's root may hold lost+found, which initdb refuses.
PGDATA = f"{DATA_MOUNT}/pgdata"

SERVER_FLAGS = (
    "-c listen_addresses='*' -c wal_level=replica -c max_wal_senders=10 "
    "-c wal_keep_size=128MB -c hot_standby=on"
)

# Runs on every start: initdb once, then (re)apply the passwords from the Secret through the local
# socket, so the Secret stays their only source of truth; finally exec the server as PID 1.
PRIMARY_SCRIPT = f"""set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres: initdb of a new cluster in $PGDATA"
  pwfile="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -A scram-sha-256 --auth-local=trust \\
    -E UTF8 --no-locale
  rm -f "$pwfile"
  printf '%s\\n' "host replication replicator all scram-sha-256" "host all all all scram-sha-256" \\
    >> "$PGDATA/pg_hba.conf"
fi
pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
psql -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \\
  -v pw="$POSTGRES_PASSWORD" -v rpw="$REPLICATION_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
ALTER ROLE CURRENT_USER PASSWORD :'pw';
SELECT 'CREATE ROLE replicator REPLICATION LOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') \\gexec
ALTER ROLE replicator PASSWORD :'rpw';
SELECT format('CREATE DATABASE %I', :'db')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec
SQL
pg_ctl -D "$PGDATA" -m fast -w stop
exec postgres -D "$PGDATA" {SERVER_FLAGS}
"""

# A replica copies the primary once (into a temporary directory, so a copy cut short is never
# mistaken for a finished one), then streams from it; -R writes the standby settings.
REPLICA_SCRIPT = f"""set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "postgres: waiting for the primary at $PRIMARY_HOST"
  until pg_isready -q -h "$PRIMARY_HOST" -p {PORT}; do sleep 2; done
  rm -rf "$PGDATA.partial"
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h "$PRIMARY_HOST" -p {PORT} -U replicator \\
    -D "$PGDATA.partial" -R -X stream -c fast
  mv "$PGDATA.partial" "$PGDATA"
fi
exec postgres -D "$PGDATA" {SERVER_FLAGS}
"""


def build(plan: Plan, names: Names) -> list[Manifest]:
    """Every Postgres object of the plan (none at stage 1, where the monolith holds the database)."""
    out: list[Manifest] = []
    for cluster in db_clusters(plan):
        out += cluster_objects(plan, names, cluster)
    return out


def cluster_objects(plan: Plan, names: Names, cluster: str) -> list[Manifest]:
    primary = {CLUSTER: cluster, ROLE: "primary"}
    replica = {CLUSTER: cluster, ROLE: "replica"}
    out = [
        statefulset(plan, names, f"{cluster}-primary", primary, holds_data=True),
        service(names, names.rw(cluster), "db", names.selector("db", **primary), PORT, PORT,
                labels=primary),
    ]
    if plan.read_replicas:
        out += [
            statefulset(plan, names, f"{cluster}-replica", replica, holds_data=False,
                        replicas=plan.read_replicas, primary_host=names.rw(cluster)),
            service(names, names.ro(cluster), "db", names.selector("db", **replica), PORT, PORT,
                    labels=replica),
        ]
    return out


def statefulset(
    plan: Plan,
    names: Names,
    component: str,
    role_labels: dict[str, str],
    *,
    holds_data: bool,
    replicas: int = 1,
    primary_host: str | None = None,
) -> Manifest:
    labels = {**role_labels, HOLDS_DATA: "true" if holds_data else "false"}
    selector = names.selector("db", **role_labels)
    name = names.of(component)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(names, name, "db", **labels),
        "spec": {
            "replicas": replicas,
            "serviceName": names.rw(role_labels[CLUSTER]) if holds_data else names.ro(role_labels[CLUSTER]),
            "selector": {"matchLabels": selector},
            "podManagementPolicy": "Parallel",
            # Replica volumes are copies: drop them with their pods. A primary's volume is the data:
            # it goes only when the whole ScaleStage is deleted (the StatefulSet is never pruned).
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
            "template": {
                "metadata": {"labels": names.labels("db", **labels)},
                "spec": {
                    "securityContext": pod_security(POSTGRES_UID),
                    "terminationGracePeriodSeconds": 30,
                    # one Postgres cluster's primary and replicas apart: a lost node keeps a copy
                    "topologySpreadConstraints": spread(
                        names.selector("db", **{CLUSTER: role_labels[CLUSTER]})),
                    "containers": [
                        container(plan, names, primary_host=primary_host),
                    ],
                    "volumes": [socket_volume()],
                },
            },
            "volumeClaimTemplates": [volume_claim(plan, names, "db", labels)],
        },
    }


def container(plan: Plan, names: Names, *, primary_host: str | None = None) -> dict[str, Any]:
    """The Postgres container: a primary, or (with primary_host) a streaming replica of it."""
    variables = [
        env("PGDATA", PGDATA),
        env("POSTGRES_USER", USER),
        env("POSTGRES_DB", DATABASE),
        env_from_secret("POSTGRES_PASSWORD", names.credentials, secrets.DB_PASSWORD),
        env_from_secret("REPLICATION_PASSWORD", names.credentials, secrets.REPLICATION_PASSWORD),
    ]
    if primary_host:
        variables.append(env("PRIMARY_HOST", primary_host))
    return {
        "name": "postgres",
        "image": plan.images["postgres"],
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", REPLICA_SCRIPT if primary_host else PRIMARY_SCRIPT],
        "env": variables,
        "ports": [{"name": "postgres", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": ready_probe(),
        "resources": dict(plan.resources["database"]),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_MOUNT},
            {"name": "socket", "mountPath": "/var/run/postgresql"},
        ],
    }


def ready_probe() -> dict[str, Any]:
    return {
        "exec": {"command": ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(PORT)]},
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def socket_volume() -> dict[str, Any]:
    """The unix socket directory, writable by uid 999 whatever the image prepared."""
    return {"name": "socket", "emptyDir": {}}


def volume_claim(
    plan: Plan, names: Names, component: str, labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "metadata": {"name": "data", "labels": names.labels(component, **labels)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": plan.storage}},
        },
    }


def url(host: str) -> str:
    """libpq URL without a password (pods get PGPASSWORD from the Secret)."""
    return f"postgresql://{USER}@{host}:{PORT}/{DATABASE}"
