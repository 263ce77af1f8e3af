"""The architecture page: the operator's picture of this instance (the architecture document, as
it is now) and how *this* request was served. Without that picture it shows what the pod knows from
its own config."""

from urllib.parse import urlsplit

from flask import Blueprint, render_template

from chirp import reads
from chirp.shards import PRIMARY, route_label
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


def _databases(svc, with_replicas: bool) -> list[dict]:
    """The databases this pod reads from and writes to at this stage, primaries first per shard
    (a stage-2 pod knows the replicas' URL already but does not use it)."""
    sharded = svc.shard_map.sharded
    out = []
    for shard in svc.shard_map.shards:
        out.append((route_label(sharded, shard.index, PRIMARY), shard.primary_url))
        if with_replicas:
            out += [(route_label(sharded, shard.index, r), url)
                    for r, url in enumerate(shard.replica_urls)]
    return [{"route": route, "address": _address(url)} for route, url in out]


def architecture_view() -> dict:
    svc = services()
    config, architecture = svc.config, svc.architecture.current()
    return {
        "architecture": architecture.document,  # None: the operator did not describe this instance
        "stage": architecture.stage,
        "stageName": architecture.stage_name,
        "pod": config.pod_name,
        "sessions": config.session_backend,
        "shards": len(svc.shard_map.shards),
        "databases": _databases(svc, architecture.reads_from_replicas),
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
