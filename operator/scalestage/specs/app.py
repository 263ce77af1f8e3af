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
# The sleep must outlast the slowest node's kube-proxy taking the pod out of its rules: after it, a
# new connection is refused, and the stage-5 edge answers a post sent there with a 5xx. With 5 s,
# 2 posts got a 5xx while the web pods rolled in each of two e2e reshards (most likely that: a
# busy node's iptables are also rewritten by the NetworkPolicy enforcer since it came in).
DRAIN_SECONDS = 15
GUNICORN_GRACEFUL_SECONDS = 30
TERMINATION_GRACE_SECONDS = DRAIN_SECONDS + GUNICORN_GRACEFUL_SECONDS + 5
# `chirp migrate` starts with the database (a web pod and its primary are created together): it
# waits for it rather than fail, or the kubelet's crash backoff delays readiness by minutes.
MIGRATE_WAIT_SECONDS = 300
ENTRY_ARGS = {"migrate": ["migrate", "--wait", str(MIGRATE_WAIT_SECONDS)]}


# The web pods read the architecture document from a mounted file, not from env: the kubelet
# updates a mounted ConfigMap's files in place (no subPath), so a step that changes only the
# document (2↔3, scaling) reaches running pods without restarting them, and the app re-reads the
# file when it changes (docs/contracts.md, CHIRP_ARCHITECTURE_FILE).
ARCHITECTURE_VOLUME = "architecture"
ARCHITECTURE_DIR = "/etc/chirp/architecture"
ARCHITECTURE_FILE = f"{ARCHITECTURE_DIR}/{architecture.KEY}"


def chirp_env(plan: Plan, names: Names, *, live_architecture: bool = False) -> list[dict[str, Any]]:
    """CHIRP_* variables for web, worker and migrate containers; passwords only by Secret
    reference.

    No CHIRP_STAGE: the stage is the architecture document's (one source, the ConfigMap), and
    nothing here differs between stages 2 and 3, so scaling out to stage 3 or back rolls no web
    pod (their sessions live in the process). `live_architecture`: the document comes from the
    mounted file (the pod must mount architecture_volume()); otherwise from env, fixed at start.
    """
    out = [
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
        # From stage 2 on, replicas or not: the `-ro` Service exists at stage 2 too (without
        # endpoints) and the app reads from it only while the document's stage is 3 or 4.
        out.append(env("CHIRP_REPLICA_URLS", postgres.url(names.ro("db"))))
    if plan.stage.redis:
        out.append(env("CHIRP_REDIS_URL", redis.url(names, 0)))
    if plan.workers:
        out.append(env("CHIRP_BROKER_URL", redis.url(names, 1)))
    if live_architecture:
        out.append(env("CHIRP_ARCHITECTURE_FILE", ARCHITECTURE_FILE))
    else:
        out.append({
            "name": architecture.ENV,
            "valueFrom": {"configMapKeyRef": {"name": names.architecture, "key": architecture.KEY}},
        })
    out += [
        env_from_field("POD_NAME", "metadata.name"),
        env_from_field("NODE_NAME", "spec.nodeName"),
    ]
    return out


def architecture_volume(names: Names) -> dict[str, Any]:
    """The architecture ConfigMap as a volume, for pods whose containers read it live."""
    return {"name": ARCHITECTURE_VOLUME, "configMap": {"name": names.architecture}}


def container(plan: Plan, names: Names, command: str, *,
              live_architecture: bool = False) -> dict[str, Any]:
    """A Chirp container running one entry point of the image's `chirp`: `web`, `worker` or
    `migrate`. With `live_architecture` it mounts architecture_volume() (the pod must have it)
    and reads the document from there (chirp_env)."""
    fields: dict[str, Any] = {}
    if command == "web":
        fields = {
            "ports": {"http": PORT},
            # probed every 2 s: a rolled pod joins the Service soon after it can serve (a stage
            # change waits on it), at the price of a cheap database ping
            "readinessProbe": http_probe("/readyz", period=2),
            "livenessProbe": http_probe("/healthz", period=10, failures=6),
            # the kubelet's own sleep action: no shell or sleep binary needed in the image
            "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        }
    if live_architecture:
        fields["mounts"] = {ARCHITECTURE_VOLUME: ARCHITECTURE_DIR}
        fields["read_only"] = (ARCHITECTURE_VOLUME,)
    return common.container(
        command, plan.images["app"], plan.resources["workers" if command == "worker" else "web"],
        args=ENTRY_ARGS.get(command, [command]),
        env=chirp_env(plan, names, live_architecture=live_architecture),
        **fields,
    )


def http_probe(path: str, *, period: int, failures: int = 3) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }
