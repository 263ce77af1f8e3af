"""Server-side sessions: in this web process (stages 1-3) or in Redis (stages 4-5).

Web layer: these are Flask session interfaces (flask-session), installed by the app factory.

Process sessions are why stages 2-3 need sticky load balancing (docs/contracts.md, Sessions);
Redis sessions make web pods stateless. A Redis outage must not turn into 5xx: the session then
reads as empty (logged out) and saving is skipped; login answers 503 until Redis is back.
"""

import redis
from cachelib import SimpleCache
from flask_session.cachelib import CacheLibSessionInterface
from flask_session.redis import RedisSessionInterface

from chirp.trace import current_trace

KEY_PREFIX = "chirp:session:"


class ResilientRedisSessionInterface(RedisSessionInterface):
    def _retrieve_session_data(self, store_id):
        try:
            return super()._retrieve_session_data(store_id)
        except redis.RedisError:
            current_trace().used_cache("down")
            return None

    def _upsert_session(self, session_lifetime, session, store_id):
        try:
            super()._upsert_session(session_lifetime, session, store_id)
        except redis.RedisError:
            current_trace().used_cache("down")

    def _delete_session(self, store_id):
        try:
            super()._delete_session(store_id)
        except redis.RedisError:
            current_trace().used_cache("down")


def install_sessions(app, backend: str, redis_client=None) -> None:
    app.config.update(
        SESSION_PERMANENT=True,
        SESSION_REFRESH_EACH_REQUEST=False,  # store once per change, not on every request
        SESSION_COOKIE_NAME="chirp_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if backend == "redis":
        app.session_interface = ResilientRedisSessionInterface(
            app, client=redis_client, key_prefix=KEY_PREFIX
        )
    else:
        store = SimpleCache(threshold=100_000, default_timeout=0)
        app.session_interface = CacheLibSessionInterface(app, client=store, key_prefix=KEY_PREFIX)
