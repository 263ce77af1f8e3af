"""The Flask app factory: create_app(config) wires services, sessions, blueprints and reporting.

gunicorn builds the app with `chirp.app:create_app()` (see `chirp web`): no app at import time.
"""

import logging
import os
import time

from flask import Flask, g, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from chirp.config import Config, load_config
from chirp.db.pools import DatabaseUnavailable, WritesFenced
from chirp.errors import ChirpError
from chirp.metrics import HTTP_LATENCY, HTTP_REQUESTS
from chirp.services import Services, build_services
from chirp.trace import current_trace, end_trace, start_trace
from chirp.web.security import install_security, proxies_in_front
from chirp.web.sessions import install_sessions

log = logging.getLogger(__name__)


def create_app(config: Config | None = None) -> Flask:
    """Build the app from a Config (default: the environment, validated)."""
    config = config or load_config(os.environ)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=config.secret_key, MAX_CONTENT_LENGTH=64 * 1024)
    # Keys in the order the views build them (posts, then next_cursor; id first), not sorted:
    # Flask 3 reads this from its JSON provider (the JSON_SORT_KEYS setting is gone since 2.3).
    app.json.sort_keys = False
    svc = build_services(config)
    app.extensions["chirp"] = svc
    install_sessions(app, config.session_backend, svc.session_redis)

    from chirp.web import api, architecture, ops, pages

    for blueprint in (ops.bp, api.bp, pages.bp, architecture.bp):
        app.register_blueprint(blueprint)
    install_security(app, config)  # CSRF and rate limits wrap the views registered above
    app.wsgi_app = _traced_requests(app.wsgi_app)
    if hops := proxies_in_front(config):
        # The client's address from X-Forwarded-For, trusting exactly the proxies that set it
        # (the rightmost `hops` entries); anything a client wrote there itself is ignored.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)
    _install_reporting(app, svc)
    _install_error_handlers(app)
    return app


def _traced_requests(wsgi_app):
    """Each request gets its own trace for everything it runs, from loading the session (a Redis
    outage there is reported too) to the last after_request hook; reset afterwards, so nothing of
    it outlives the request in the worker thread."""

    def traced_wsgi_app(environ, start_response):
        token = start_trace()
        try:
            return wsgi_app(environ, start_response)
        finally:
            end_trace(token)

    return traced_wsgi_app


def _served_by(svc: Services) -> dict:
    config, architecture = svc.config, svc.architecture.current()
    trace = current_trace()
    return {"pod": config.pod_name, "node": config.node_name, "stage": architecture.stage,
            "stageName": architecture.stage_name, "db": trace.db_header(),
            "cache": trace.cache_header(config.cache_enabled), "sessions": config.session_backend}


def _install_reporting(app: Flask, svc: Services) -> None:
    """The stage reported is the architecture document's as it is now (LiveArchitecture)."""
    config = svc.config

    @app.before_request
    def start_clock():
        g.chirp_started = time.perf_counter()

    @app.context_processor
    def served_by():
        architecture = svc.architecture.current()
        return {"served_by": lambda: _served_by(svc), "stage_title": architecture.stage_title,
                "stage": architecture.stage}

    @app.after_request
    def report(response):
        served = _served_by(svc)
        response.headers["X-Chirp-Pod"] = served["pod"]
        response.headers["X-Chirp-Stage"] = str(served["stage"])
        response.headers["X-Chirp-DB"] = served["db"]
        response.headers["X-Chirp-Cache"] = served["cache"]
        timeline_source = current_trace().timeline_source
        if timeline_source:
            response.headers["X-Chirp-Timeline"] = timeline_source
        if config.node_name:
            response.headers["X-Chirp-Node"] = config.node_name
        endpoint = request.endpoint or "unmatched"
        HTTP_REQUESTS.labels(endpoint=endpoint, method=request.method,
                             status=str(response.status_code)).inc()
        if "chirp_started" in g:
            HTTP_LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - g.chirp_started)
        return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _error_response(status: int, message: str, retry_after: int | None = None):
    if _wants_json():
        response = jsonify(error=message, status=status)
        response.status_code = status
    else:
        page = render_template("error.html", status=status, message=message)
        response = make_response(page, status)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ChirpError)
    def chirp_error(error: ChirpError):
        return _error_response(error.status, error.message, error.retry_after)

    @app.errorhandler(WritesFenced)
    def fenced(error):
        return _error_response(503, str(error), retry_after=5)

    @app.errorhandler(DatabaseUnavailable)
    def unavailable(error):
        log.warning("database unavailable: %s (%s)", error, error.__cause__)
        return _error_response(503, f"{error}; retry shortly", retry_after=5)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {404: f"no such page: {request.path}",
                    405: f"{request.method} is not allowed on {request.path}",
                    413: "request body is too large"}
        return _error_response(error.code or 500, messages.get(error.code, error.description))
