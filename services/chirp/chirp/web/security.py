"""The app under abuse: CSRF tokens on HTML forms (Flask-WTF) and rate limits on logging in and
signing up (Flask-Limiter). Why each choice: docs/security.md.

Both extensions are built per app by install_security(), called from create_app: no module-level
limiter, so several apps in one process (tests) never share counters by accident.
"""

from flask import Flask, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from chirp.config import Config
from chirp.validation import InvalidInput, clean_username

LIMITS_KEY_PREFIX = "chirp:limits"


FRONTS = ("web", "monolith")  # the components that run this app and answer clients


def client_address() -> str:
    # The client's address: the TCP peer, or behind the stage-5 edge the address the edge saw
    # (ProxyFix, wired by create_app with proxies_in_front; docs/security.md).
    return request.remote_addr or "unknown"


def proxies_in_front(config: Config) -> int:
    """How many HTTP proxies a request passes before this app: the configured number, else the
    components on the architecture document's request path between the client and the app
    (client → edge → web: 1; client → web: 0). 0 without a document, or with a path that does not
    lead to the app: trusting a hop too many would let a client choose its own address."""
    if config.proxies_in_front is not None:
        return config.proxies_in_front
    flows = (config.architecture or {}).get("flows")
    if not isinstance(flows, list):
        return 0
    next_hop = {}
    for flow in flows:
        if isinstance(flow, dict):
            next_hop.setdefault(flow.get("from"), flow.get("to"))
    hops, at = 0, next_hop.get("client")
    while at is not None and at not in FRONTS:
        if hops >= len(flows):  # a cycle: no path to the app
            return 0
        hops, at = hops + 1, next_hop.get(at)
    return hops if at in FRONTS else 0


def login_username() -> str:
    """The username a login names (JSON or form), normalised like the view does."""
    try:
        if request.is_json:
            body = request.get_json(silent=True)
            raw = body.get("username") if isinstance(body, dict) else None
        else:
            raw = request.form.get("username")
        return "user:" + clean_username(raw)
    except (InvalidInput, HTTPException, RecursionError):
        # Not a valid name (the view answers 400) or a body too large (the view answers 413).
        return "user:?"


def _failed_login(response) -> bool:
    # Only wrong passwords count: a load generator logging many users in is not an attacker.
    return response.status_code == 401


def _refuse_overlong_streams() -> None:
    """A body sent without Content-Length (chunked) is cut at MAX_CONTENT_LENGTH by Werkzeug, not
    refused: the view would see truncated JSON or form data. Read it (cached for the view) and
    answer 413 like a declared length over the limit."""
    limit = request.max_content_length
    if request.content_length is None and limit and request.environ.get("wsgi.input_terminated"):
        if len(request.get_data(cache=True)) >= limit:
            raise RequestEntityTooLarge()


def install_security(app: Flask, config: Config) -> None:
    app.before_request(_refuse_overlong_streams)  # first: before CSRF reads the form
    # Form tokens live in the session for its lifetime (no one-hour expiry mid-form).
    app.config.update(WTF_CSRF_TIME_LIMIT=None)
    csrf = CSRFProtect(app)
    # The JSON API takes only application/json bodies, which a cross-site form cannot send, and
    # the session cookie is SameSite=Lax: no form tokens there (docs/security.md).
    csrf.exempt(app.blueprints["api"])

    limiter = Limiter(
        client_address,
        app=app,
        # Shared across web pods when there is a Redis; in this process otherwise (stages 1-3).
        storage_uri=config.redis_url or "memory://",
        storage_options={"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        if config.redis_url else {},
        strategy="sliding-window-counter",
        key_prefix=LIMITS_KEY_PREFIX,
        headers_enabled=True,  # Retry-After on 429
        # Redis down: count in this process instead of failing the request (never a 5xx).
        swallow_errors=True,
        in_memory_fallback_enabled=bool(config.redis_url),
    )
    app.extensions["chirp_limiter"] = limiter

    rules = {
        "login-username": (config.login_limit_per_username, login_username, _failed_login,
                           "too many failed logins for this username; try again later"),
        "login-address": (config.login_limit_per_ip, client_address, _failed_login,
                          "too many failed logins from this address; try again later"),
        "signup-address": (config.signup_limit_per_ip, client_address, None,
                           "too many sign-ups from this address; try again later"),
    }
    # Shared scopes: the JSON API and the HTML form draw on the same counters.
    login, signup = ("login-username", "login-address"), ("signup-address",)
    scopes_of = {"api.login": login, "pages.login": login, "api.signup": signup,
                 "pages.signup": signup}
    # Flask-Limiter looks at every request (before and after it); only these endpoints carry
    # limits, so every other request is exempt at its first test: the full look cost a timeline
    # read 8-11 % of the web process's CPU at every stage (docs/cache.md, measured by py-spy).
    limiter.request_filter(lambda: request.endpoint not in scopes_of)
    for endpoint, scopes in scopes_of.items():
        view = app.view_functions[endpoint]
        for scope in scopes:
            value, key_func, deduct_when, message = rules[scope]
            view = limiter.shared_limit(value, scope, key_func=key_func, methods=["POST"],
                                        deduct_when=deduct_when, error_message=message)(view)
        app.view_functions[endpoint] = view
