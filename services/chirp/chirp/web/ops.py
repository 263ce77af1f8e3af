"""Liveness, readiness and metrics.

Stopping is the platform's and gunicorn's job: the pod's preStop sleep lets the endpoints drop it
before SIGTERM, then gunicorn finishes in-flight requests (gunicorn_conf.graceful_timeout).
Readiness is about the data: not ready while a primary database does not answer.
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
    databases = services().dbs.ping()
    ready = all(databases.values())
    body = {"ready": ready, "databases": databases}
    if not ready:
        body["reason"] = "a primary database does not answer"
    return body, 200 if ready else 503


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
