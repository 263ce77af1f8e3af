"""Redis cache-aside (stages 4-5) that can never take the app down.

- Values remember the *generations* they were loaded under: the time of the last write to what they
  describe (e.g. an author's posts). A write bumps the generation after committing, so the cached
  value stops matching at once: no stale read of your own write, and a slow reader that fills in
  old data afterwards stores it under the old generation, where nobody accepts it (no
  delete/refill race). Generations and values come back in one MGET.
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


CACHE_TIMEOUT_SECONDS = 1.0  # a slow cache is skipped: the database answers instead
# A session read that fails logs the user out, so sessions wait longer for a busy Redis (measured
# on the walk: when a 2-core kind node starts stage 5's pods, a 1 s timeout logged users out).
SESSION_TIMEOUT_SECONDS = 3.0


def make_redis(url: str, socket_timeout: float = CACHE_TIMEOUT_SECONDS) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=socket_timeout)


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
        """Run action(client); on Redis trouble return default and remember the cache is down."""
        if not self.available():
            current_trace().used_cache("down")
            return default
        try:
            return action(self.client)
        except redis.RedisError:
            self._went_down()
            return default

    # --- generations --------------------------------------------------------------------------
    def bump(self, names: list[str]) -> None:
        """Called after a write commits: values cached under the old generation stop matching."""
        now_ms = int(time.time() * 1000)

        def action(r):
            pipe = r.pipeline(transaction=False)
            for name in names:
                pipe.set(f"{PREFIX}gen:{name}", now_ms, ex=self.ttl * 2)
            pipe.execute()

        self.attempt(action)

    # --- cache-aside with stampede protection -------------------------------------------------
    def fetch_many(self, items: dict[str, tuple[str, ...]], load_missing):
        """Values for items {key: generation names it depends on}, in one round trip when all hit.

        A stored value remembers the generations it was loaded under and only counts as a hit
        while they are current. Misses are filled by load_missing(keys, generations) -> {key:
        value}, where generations maps each dependency to the time (ms) of its last write, so the
        loader can avoid replicas that may not hold that write yet. Returns (values, generations),
        or None when the cache is down (the caller reads the database itself).
        """
        if not items:
            return {}, {}
        keys = list(items)
        deps = sorted({dep for names in items.values() for dep in names})
        raw = self.attempt(lambda r: r.mget([f"{PREFIX}gen:{d}" for d in deps]
                                            + [f"{PREFIX}val:{k}" for k in keys]))
        if raw is None:
            return None
        generations = {d: int(v) if v else 0 for d, v in zip(deps, raw[:len(deps)], strict=True)}
        expected = {k: [generations[d] for d in items[k]] for k in keys}
        values = {}
        for key, blob in zip(keys, raw[len(deps):], strict=True):
            if blob is not None:
                stored = json.loads(blob)
                if stored["g"] == expected[key]:
                    values[key] = stored["v"]
        missing = [key for key in keys if key not in values]
        CACHE_LOOKUPS.labels(result="hit").inc(len(keys) - len(missing))
        if not missing:
            current_trace().used_cache("hit")
            return values, generations
        CACHE_LOOKUPS.labels(result="miss").inc(len(missing))

        token = uuid.uuid4().hex
        locked = self._lock(missing, expected, token)
        if locked is None:
            return None
        mine = [key for key, got in zip(missing, locked, strict=True) if got]
        theirs = [key for key, got in zip(missing, locked, strict=True) if not got]
        if mine:  # someone may have filled and unlocked between our MGET and our lock
            filled = self._read_values(mine, expected)
            values.update(filled)
            mine = [key for key in mine if key not in filled]
        loaded_any = bool(mine)
        if mine:
            loaded = load_missing(mine, generations)
            self._store(loaded, expected)
            self._unlock(mine, expected)
            values.update(loaded)
        if theirs:
            waited = self._wait_for(theirs, expected)
            values.update(waited)
            late = [key for key in theirs if key not in waited]
            if late:  # the other filler is slow or died: read it ourselves, don't wait longer
                values.update(load_missing(late, generations))
                loaded_any = True
        current_trace().used_cache("miss" if loaded_any else "hit")
        return values, generations

    def fetch(self, key: str, depends_on: tuple[str, ...], load):
        """One key: load(generations) on a miss, and directly when the cache is down."""
        found = self.fetch_many({key: depends_on}, lambda keys, gens: {key: load(gens)})
        if found is None:
            return load({})
        return found[0][key]

    def _lock_key(self, key, expected) -> str:
        return f"{PREFIX}lock:{key}:{expected[key]}"

    def _lock(self, keys, expected, token):
        def action(r):
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.set(self._lock_key(key, expected), token, nx=True,
                         px=int(self.stampede_wait * 1000) + 1000)
            return pipe.execute()

        return self.attempt(action)

    def _unlock(self, keys, expected):
        self.attempt(lambda r: r.delete(*[self._lock_key(key, expected) for key in keys]))

    def _store(self, loaded: dict, expected) -> None:
        loaded = {key: value for key, value in loaded.items() if value is not None}  # no negatives
        if not loaded:
            return

        def action(r):
            pipe = r.pipeline(transaction=False)
            for key, value in loaded.items():
                pipe.set(f"{PREFIX}val:{key}", json.dumps({"g": expected[key], "v": value}),
                         ex=self.ttl)
            pipe.execute()

        self.attempt(action)

    def _read_values(self, keys: list[str], expected) -> dict:
        """The current values of keys (those stored under the expected generations)."""
        raw = self.attempt(lambda r: r.mget([f"{PREFIX}val:{key}" for key in keys]))
        found = {}
        for key, blob in zip(keys, raw or [], strict=False):
            if blob is not None:
                stored = json.loads(blob)
                if stored["g"] == expected[key]:
                    found[key] = stored["v"]
        return found

    def _wait_for(self, keys: list[str], expected) -> dict:
        deadline = time.monotonic() + self.stampede_wait
        found: dict = {}
        while time.monotonic() < deadline and self.available():
            found.update(self._read_values([key for key in keys if key not in found], expected))
            if len(found) == len(keys):
                break
            time.sleep(0.01)
        return found
