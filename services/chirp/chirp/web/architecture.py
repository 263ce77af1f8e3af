"""The architecture page: the operator's picture of this instance (the architecture document, as
it is now) and how *this* request was served. Without that picture it shows what the pod knows from
its own config.

The page updates itself: static/architecture.js polls `/architecture/live` once a second through
the same front door, and each answer carries the pods of every component as the Kubernetes API
sees them (when this pod may read them: web.live_cluster) and which pod and database answered
that poll (docs/architecture-page.md).
"""

import os
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, make_response, render_template

from chirp import reads
from chirp.shards import PRIMARY, route_label
from chirp.trace import current_trace
from chirp.web.common import current_user, last_write_at, services
from chirp.web.live_cluster import ClusterReader, no_access_reason
from chirp.web.live_model import page_model

bp = Blueprint("architecture", __name__)
CLUSTER = "chirp.cluster"  # app.extensions key: a ClusterReader, or why there is none


@bp.record_once
def _connect_to_the_cluster(state) -> None:
    state.app.extensions[CLUSTER] = cluster_source(os.environ)


def cluster_source(environ) -> "ClusterReader | str":
    """A reader of this pod's namespace, or why the page cannot read the cluster."""
    reason = no_access_reason(environ)
    if reason is not None:
        return reason
    try:
        return ClusterReader.in_cluster()
    except Exception as error:  # a broken token or CA: the page still shows what it knows
        return f"cannot set up the Kubernetes client ({error})"


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


def live_view() -> dict:
    """The page's model now: the cluster's view when this pod may read it, else the mounted
    document alone; and who served this request (call after _exercise_data_path)."""
    svc = services()
    config, architecture = svc.config, svc.architecture.current()
    trace = current_trace()
    served = {"pod": config.pod_name, "db": trace.db_header(),
              "cache": trace.cache_header(config.cache_enabled)}
    document = architecture.document
    source = current_app.extensions[CLUSTER]
    instance = (document or {}).get("instance")
    if isinstance(source, str):
        return page_model(document, stage=architecture.stage, served=served, problem=source)
    if not instance:
        return page_model(document, stage=architecture.stage, served=served,
                          problem="the architecture document names no instance")
    observed = source.read(instance)
    return page_model(observed.document or document, stage=architecture.stage,
                      pods=observed.pods, scalestage=observed.scalestage, served=served,
                      live=observed.live, problem=observed.problem)


def _fresh(response):
    """Never from a cache (the stage-5 edge caches anonymous pages for 5 s): each poll must reach
    a web pod, or the page would show a stale cluster and misreport who answered."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/architecture")
def page():
    _exercise_data_path()
    return _fresh(make_response(render_template("architecture.html", view=architecture_view(),
                                                live=live_view())))


@bp.get("/architecture/live")
def live():
    """The page's feed (JSON), polled by static/architecture.js."""
    _exercise_data_path()
    return _fresh(jsonify(live_view()))


@bp.get("/api/architecture")
def api():
    _exercise_data_path()
    return architecture_view()
