"""Redis cache-aside (stages 4-5) that can never take the app down.

- Keys embed a *generation*: the time of the last write to what they describe (e.g. an author's
  posts). A write bumps the generation after committing, so every later read looks under a new key:
  no stale read of your own write, and no delete/refill race. Old keys just expire.
- A miss takes a short lock per key (SET NX); concurrent readers of the same hot key wait for the
  winner's fill instead of all hitting the database (stampede protection).
- Any Redis error marks the cache down for a moment; callers get "no answer" and use the database.
"""

import json
import time
import uuid

import redis

from chirp.metrics import CACHE_LOOKUPS
from chirp.trace import current_trace

PREFIX = "chirp:"
DOWN_BACKOFF_SECONDS = 1.0


def make_redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)


class Cache:
    def __init__(self, client: redis.Redis, ttl_seconds: int, stampede_wait_seconds: float):
        self.client = client
        self.ttl = ttl_seconds
        self.stampede_wait = stampede_wait_seconds
        self._down_until = 0.0

    # --- availability -------------------------------------------------------------------------
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _went_down(self) -> None:
        self._down_until = time.monotonic() + DOWN_BACKOFF_SECONDS
        current_trace().used_cache("down")
        CACHE_LOOKUPS.labels(result="down").inc()

    def attempt(self, action, default=None):
        """Run action(client); on any Redis trouble return default and remember the cache is down."""
        if not self.available():
            current_trace().used_cache("down")
            return default
        try:
            return action(self.client)
        except redis.RedisError:
            self._went_down()
            return default

    # --- generations --------------------------------------------------------------------------
    def generations(self, names: list[str]) -> list[int] | None:
        raw = self.attempt(lambda r: r.mget([f"{PREFIX}gen:{n}" for n in names]))
        if raw is None:
            return None
        return [int(value) if value else 0 for value in raw]

    def bump(self, names: list[str]) -> None:
        """Called after a write commits: readers move on to fresh keys."""
        now_ms = int(time.time() * 1000)

        def action(r):
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.set(f"{PREFIX}gen:{name}", now_ms, ex=self.ttl * 2)
            pipe.execute()

        self.attempt(action)

    # --- cache-aside with stampede protection -------------------------------------------------
    def fetch_many(self, keys: list[str], load_missing) -> dict[str, object] | None:
        """Values for keys; misses are filled by load_missing(list_of_keys) -> {key: value}.

        Returns None when the cache is down (the caller reads the database itself).
        """
        if not keys:
            return {}
        full = [PREFIX + key for key in keys]
        raw = self.attempt(lambda r: r.mget(full))
        if raw is None:
            return None
        values = {key: json.loads(blob) for key, blob in zip(keys, raw) if blob is not None}
        missing = [key for key in keys if key not in values]
        if not missing:
            current_trace().used_cache("hit")
            CACHE_LOOKUPS.labels(result="hit").inc(len(keys))
            return values
        CACHE_LOOKUPS.labels(result="hit").inc(len(keys) - len(missing))
        CACHE_LOOKUPS.labels(result="miss").inc(len(missing))

        token = uuid.uuid4().hex
        locked = self._lock(missing, token)
        if locked is None:
            return None
        mine = [key for key, got in zip(missing, locked) if got]
        theirs = [key for key, got in zip(missing, locked) if not got]
        if mine:
            loaded = load_missing(mine)
            self._store(loaded)
            self._unlock(mine, token)
            values.update(loaded)
        if theirs:
            waited = self._wait_for(theirs)
            values.update(waited)
            late = [key for key in theirs if key not in waited]
            if late:  # the other filler is slow or died: read it ourselves, don't wait longer
                values.update(load_missing(late))
                mine += late
        current_trace().used_cache("miss" if mine else "hit")
        return values

    def _lock(self, keys, token):
        def action(r):
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.set(f"{PREFIX}lock:{key}", token, nx=True, px=int(self.stampede_wait * 1000) + 1000)
            return pipe.execute()

        return self.attempt(action)

    def _unlock(self, keys, token):
        def action(r):
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.delete(f"{PREFIX}lock:{key}")
            pipe.execute()

        self.attempt(action)

    def _store(self, loaded: dict) -> None:
        loaded = {key: value for key, value in loaded.items() if value is not None}  # no negatives
        if not loaded:
            return

        def action(r):
            pipe = r.pipeline(transaction=False)
            for key, value in loaded.items():
                pipe.set(PREFIX + key, json.dumps(value), ex=self.ttl)
            pipe.execute()

        self.attempt(action)

    def _wait_for(self, keys: list[str]) -> dict:
        deadline = time.monotonic() + self.stampede_wait
        found: dict = {}
        while time.monotonic() < deadline:
            pending = [key for key in keys if key not in found]
            raw = self.attempt(lambda r: r.mget([PREFIX + key for key in pending]))
            if raw is None:
                break
            found.update({k: json.loads(b) for k, b in zip(pending, raw) if b is not None})
            if len(found) == len(keys):
                break
            time.sleep(0.01)
        return found

    def fetch(self, key: str, load):
        """One key: the value, loading it with load() on a miss; load() directly when down."""
        values = self.fetch_many([key], lambda missing: {key: load()})
        if values is None:
            return load()
        return values[key]
