"""The Chirp container and its environment, derived from the plan (docs/contracts.md is the
contract)."""

from __future__ import annotations

from typing import Any

from ..names import Names
from ..stages import MONOLITH, SHARDED, Plan, db_clusters
from . import architecture, common, postgres, redis, secrets
from .common import env, env_from_field, env_from_secret

APP_UID = 10001
PORT = 8080
# Graceful stop is the platform's and gunicorn's: the kubelet runs the preStop sleep first, while
# the endpoints controller takes the pod out of its Services (new requests stop arriving), then
# sends SIGTERM, on which gunicorn finishes in-flight requests for up to its graceful timeout
# (graceful_timeout in chirp/gunicorn_conf.py). The pod's grace period covers both, plus a margin.
DRAIN_SECONDS = 5
GUNICORN_GRACEFUL_SECONDS = 30
TERMINATION_GRACE_SECONDS = DRAIN_SECONDS + GUNICORN_GRACEFUL_SECONDS + 5
# `chirp migrate` starts with the database (a web pod and its primary are created together): it
# waits for it rather than fail, or the kubelet's crash backoff delays readiness by minutes.
MIGRATE_WAIT_SECONDS = 300
ENTRY_ARGS = {"migrate": ["migrate", "--wait", str(MIGRATE_WAIT_SECONDS)]}


def chirp_env(plan: Plan, names: Names) -> list[dict[str, Any]]:
    """CHIRP_* variables for web, worker and migrate containers; passwords only by Secret
    reference."""
    out = [
        env("CHIRP_STAGE", plan.number),
        env_from_secret("CHIRP_SECRET_KEY", names.credentials, secrets.SECRET_KEY),
        env_from_secret("PGPASSWORD", names.credentials, secrets.DB_PASSWORD),
        env("CHIRP_SESSION_BACKEND", plan.stage.session_backend),
    ]
    clusters = db_clusters(plan)
    if plan.data_layout == MONOLITH:
        out.append(env("CHIRP_DATABASE_URL", postgres.url("localhost")))
    elif plan.data_layout == SHARDED:
        out.append(env("CHIRP_SHARD_URLS", ",".join(postgres.url(names.rw(c)) for c in clusters)))
        if plan.read_replicas:
            out.append(env("CHIRP_SHARD_REPLICA_URLS",
                           ",".join(postgres.url(names.ro(c)) for c in clusters)))
    else:
        out.append(env("CHIRP_DATABASE_URL", postgres.url(names.rw("db"))))
        if plan.read_replicas:
            out.append(env("CHIRP_REPLICA_URLS", postgres.url(names.ro("db"))))
    if plan.stage.redis:
        out.append(env("CHIRP_REDIS_URL", redis.url(names, 0)))
    if plan.workers:
        out.append(env("CHIRP_BROKER_URL", redis.url(names, 1)))
    out += [
        # From a ConfigMap: a scale change updates the map without rolling every web pod.
        {
            "name": architecture.ENV,
            "valueFrom": {"configMapKeyRef": {"name": names.architecture, "key": architecture.KEY}},
        },
        env_from_field("POD_NAME", "metadata.name"),
        env_from_field("NODE_NAME", "spec.nodeName"),
    ]
    return out


def container(plan: Plan, names: Names, command: str) -> dict[str, Any]:
    """A Chirp container running one entry point of the image's `chirp`: `web`, `worker` or
    `migrate`."""
    fields: dict[str, Any] = {}
    if command == "web":
        fields = {
            "ports": {"http": PORT},
            "readinessProbe": http_probe("/readyz", period=5),
            "livenessProbe": http_probe("/healthz", period=10, failures=6),
            # the kubelet's own sleep action: no shell or sleep binary needed in the image
            "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        }
    return common.container(
        command, plan.images["app"], plan.resources["workers" if command == "worker" else "web"],
        args=ENTRY_ARGS.get(command, [command]),
        env=chirp_env(plan, names),
        **fields,
    )


def http_probe(path: str, *, period: int, failures: int = 3) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }
