"""Postgres: per cluster (`db`, or `db-shard-N` at stage 5) a primary StatefulSet, an optional
read-replica StatefulSet bootstrapped with pg_basebackup, and `-rw` / `-ro` Services.

The pods get an explicit script instead of an image entrypoint, so our scalestage/postgres image and
the official postgres image behave the same (both have the binaries on PATH and uid 999).
"""

from __future__ import annotations

from typing import Any

from ..names import CLUSTER, HOLDS_DATA, ROLE, Names
from ..stages import SINGLE_PRIMARY, Plan, db_clusters
from . import common, secrets
from .common import Manifest, env, env_from_secret, render, service, spread, workload

POSTGRES_UID = 999
PORT = 5432
USER = "chirp"
DATABASE = "chirp"
DATA_MOUNT = "/var/lib/postgresql/data"
# A subdirectory: a fresh volume's root may hold lost+found, which initdb refuses.
PGDATA = f"{DATA_MOUNT}/pgdata"

SERVER_FLAGS = (
    # wal_level=logical and the worker limits: online data moves (chirp move, docs/moves.md)
    # replicate rows into new databases, up to 3 workers per subscription on a target
    "-c listen_addresses='*' -c wal_level=logical -c max_wal_senders=16 "
    "-c max_replication_slots=16 -c max_logical_replication_workers=16 "
    "-c max_worker_processes=32 -c wal_keep_size=128MB -c hot_standby=on"
)


def start_script(primary: bool) -> str:
    """The container's `sh -c` script (templates/postgres-{primary,replica}.sh).

    A primary runs on every start: initdb once, then (re)apply the passwords from the Secret through
    the local socket, so the Secret stays their only source of truth; finally exec the server as
    PID 1. A replica copies the primary once (into a temporary directory, so a copy cut short is
    never mistaken for a finished one), then streams from it; -R writes the standby settings.
    """
    if primary:
        return render("postgres-primary.sh", SERVER_FLAGS=SERVER_FLAGS)
    return render("postgres-replica.sh", SERVER_FLAGS=SERVER_FLAGS, PORT=PORT)


def build(plan: Plan, names: Names) -> list[Manifest]:
    """Every Postgres object of the plan (none at stage 1: the monolith holds the database)."""
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
        out.append(statefulset(plan, names, f"{cluster}-replica", replica, holds_data=False,
                               replicas=plan.read_replicas, primary_host=names.rw(cluster)))
    # The single primary's `-ro` Service exists at stage 2 too: the web pods are given its URL
    # from stage 2 on (specs/app.py), so their template is the same at 2 and 3 and neither step
    # restarts them. Without replicas it leads to the primary: the app reads from it only from
    # stage 3, but a pod that has not yet seen the document of stage 2 after 3 → 2 still does.
    if plan.read_replicas or plan.data_layout == SINGLE_PRIMARY:
        readers = replica if plan.read_replicas else primary
        out.append(service(names, names.ro(cluster), "db", names.selector("db", **readers), PORT,
                           PORT, labels=replica))
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
    cluster = role_labels[CLUSTER]
    pod = {
        "terminationGracePeriodSeconds": 30,
        # one Postgres cluster's primary and replicas apart: a lost node keeps a copy
        "topologySpreadConstraints": spread(names.selector("db", **{CLUSTER: cluster})),
        "containers": [container(plan, names, primary_host=primary_host)],
        "volumes": [socket_volume()],
    }
    return workload(
        "StatefulSet", names, "db", replicas, pod,
        run_as=POSTGRES_UID,
        name=names.of(component),
        labels=labels,
        selector=names.selector("db", **role_labels),
        serviceName=names.rw(cluster) if holds_data else names.ro(cluster),
        podManagementPolicy="Parallel",
        # Replica volumes are copies: drop them with their pods. A primary's volume is the data:
        # it goes only when the whole ScaleStage is deleted (the StatefulSet is never pruned).
        volume_claims=[volume_claim(plan, names, "db", labels)],
    )


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
    return common.container(
        "postgres", plan.images["postgres"], plan.resources["database"],
        command=["sh", "-c", start_script(primary=not primary_host)],
        env=variables,
        ports={"postgres": PORT},
        readinessProbe=ready_probe(),
        mounts={"data": DATA_MOUNT, "socket": "/var/run/postgresql"},
    )


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
