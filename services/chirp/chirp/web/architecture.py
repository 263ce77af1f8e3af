"""The architecture page: the operator's picture of this instance (CHIRP_ARCHITECTURE) and how
*this* request was served. Without that picture it shows what the pod knows from its own config."""

from urllib.parse import urlsplit

from flask import Blueprint, render_template

from chirp import reads
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


def _address(url: str) -> str:
    """host:port/database of a URL (they carry no password; the user name is left out too)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname}{port}{parts.path}"


def architecture_view() -> dict:
    svc = services()
    config = svc.config
    return {
        "architecture": config.architecture,  # None: the operator did not describe this instance
        "stage": config.stage,
        "stageName": config.stage_name,
        "pod": config.pod_name,
        "sessions": config.session_backend,
        "shards": len(svc.shard_map.shards),
        "databases": [{"route": route, "address": _address(url)}
                      for route, url in svc.shard_map.databases()],
        "redis": _address(config.redis_url) if config.redis_url else None,
    }


@bp.get("/architecture")
def page():
    _exercise_data_path()
    return render_template("architecture.html", view=architecture_view())


@bp.get("/api/architecture")
def api():
    _exercise_data_path()
    return architecture_view()
