"""The architecture page: the configured topology and how *this* request was served."""

from flask import Blueprint, render_template

from chirp import reads
from chirp.topology import default_topology
from chirp.web.common import current_user, last_write_at, services

bp = Blueprint("architecture", __name__)


def _exercise_data_path() -> None:
    """A representative read, so the page shows a real route (replica/shard) and cache result."""
    svc = services()
    user = current_user()
    if user is not None:
        reads.profile(svc, user["id"], last_write_at())
    else:
        reads.public_posts(svc, None, 5, last_write_at())


def architecture_view() -> dict:
    svc = services()
    config = svc.config
    topology = config.topology or default_topology(config)
    return {"topology": topology, "stage": config.stage, "stageName": config.stage_name,
            "shards": len(svc.topology.shards), "sessions": config.session_backend}


@bp.get("/architecture")
def page():
    _exercise_data_path()
    return render_template("architecture.html", view=architecture_view())


@bp.get("/api/architecture")
def api():
    _exercise_data_path()
    return architecture_view()
