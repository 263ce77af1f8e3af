"""Liveness, readiness and metrics.

Stopping is the platform's and gunicorn's job: the pod's preStop sleep lets the endpoints drop it
before SIGTERM, then gunicorn finishes in-flight requests (gunicorn_conf.graceful_timeout).
Readiness is about the data: not ready while a shard has no database answering, its primary nor
(at stages that read from replicas) a replica. A lost primary alone stops its writes, not the pods.
"""

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chirp.web.common import services

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    ready, databases = services().dbs.ping()
    body = {"ready": ready, "databases": databases}
    if not ready:
        body["reason"] = "a shard has no database answering (its primary, nor a replica)"
    return body, 200 if ready else 503


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
