"""The Chirp container and its environment, derived from the plan (docs/contracts.md is the contract)."""

from __future__ import annotations

from typing import Any

from ..names import Names
from ..stages import MONOLITH, SHARDED, Plan, db_clusters
from . import postgres, redis, secrets, topology
from .common import container_security, env, env_from_field, env_from_secret

APP_UID = 10001
PORT = 8080
# `chirp web` drains this long after SIGTERM (its default CHIRP_DRAIN_SECONDS), then gunicorn gets
# up to 30 s for in-flight requests: the pod's grace period must cover both (docs/contracts.md).
DRAIN_SECONDS = 5
TERMINATION_GRACE_SECONDS = DRAIN_SECONDS + 30 + 5
# `chirp migrate` starts with the database (a web pod and its primary are created together): retry
# in the container rather than fail, or the kubelet's crash backoff delays readiness by minutes.
MIGRATE_RETRY_SECONDS = 300
RETRY_SCRIPT = f"""deadline=$(( $(date +%s) + {MIGRATE_RETRY_SECONDS} ))
until chirp "$@"; do
  [ "$(date +%s)" -lt "$deadline" ] || {{ echo "chirp $*: giving up" >&2; exit 1; }}
  echo "chirp $*: failed (database not up yet?); retrying in 2 s" >&2
  sleep 2
done
"""


def chirp_env(plan: Plan, names: Names) -> list[dict[str, Any]]:
    """CHIRP_* variables for web, worker and migrate containers; passwords only by Secret reference."""
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
            "name": "CHIRP_TOPOLOGY",
            "valueFrom": {"configMapKeyRef": {"name": names.topology, "key": topology.KEY}},
        },
        env_from_field("POD_NAME", "metadata.name"),
        env_from_field("NODE_NAME", "spec.nodeName"),
    ]
    return out


def container(plan: Plan, names: Names, command: str) -> dict[str, Any]:
    """A Chirp container running one entry point: `web`, `worker` or `migrate`."""
    out: dict[str, Any] = {
        "name": command,
        "image": plan.images["app"],
        "imagePullPolicy": "IfNotPresent",
        "args": [command],
        "env": chirp_env(plan, names),
        "resources": dict(plan.resources["workers" if command == "worker" else "web"]),
        "securityContext": container_security(),
    }
    if command == "migrate":
        # sh -c SCRIPT NAME ARGS...: the args stay `migrate`, run by the retry loop as "$@"
        out["command"] = ["sh", "-c", RETRY_SCRIPT, "chirp-retry"]
    if command == "web":
        out["ports"] = [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
        out["readinessProbe"] = http_probe("/readyz", period=5)
        out["livenessProbe"] = http_probe("/healthz", period=10, failures=6)
    return out


def http_probe(path: str, *, period: int, failures: int = 3) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }
