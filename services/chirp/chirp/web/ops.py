"""Liveness, readiness and metrics. Readiness fails first when the pod is told to stop."""

import os

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chirp.web.common import services

bp = Blueprint("ops", __name__)


def draining() -> bool:
    """`chirp web` creates this file on SIGTERM, then keeps serving for the drain period."""
    path = current_app.config.get("CHIRP_DRAIN_FILE")
    return bool(path) and os.path.exists(path)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    if draining():
        return {"ready": False, "reason": "shutting down"}, 503
    databases = services().dbs.ping()
    ready = all(databases.values())
    body = {"ready": ready, "databases": databases}
    if not ready:
        body["reason"] = "a primary database does not answer"
    return body, 200 if ready else 503


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
