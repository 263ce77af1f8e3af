"""Redis cache-aside (stages 4-5) that can never take the app down.

- Values remember the *generations* they were loaded under: the time of the last write to what they
  describe (e.g. an author's posts). A write bumps the generation after committing, so the cached
  value stops matching at once: no stale read of your own write, and a slow reader that fills in
  old data afterwards stores it under the old generation, where nobody accepts it (no
  delete/refill race). Generations and values come back in one MGET.
- A *checked entry* (a precomputed result such as a home timeline page) stores the names and
  generations of everything it was built from; a Lua script compares them with the current ones
  inside Redis, so a hit is one round trip however many generations it depends on. A mismatch
  returns the stale entry and what changed, so the caller may repair it instead of rebuilding.
- A miss takes a short lock per key (SET NX, in the same round trip as a second look); concurrent
  readers of the same hot key wait for the winner's fill instead of all hitting the database
  (stampede protection). Hits never touch a lock.
- Values are MessagePack (msgspec): several times faster to decode than JSON for lists of posts.
- Any Redis error marks the cache down for a moment; callers get "no answer" and use the database.
"""

import time
import uuid
from dataclasses import dataclass

import msgspec
import redis

from chirp.metrics import CACHE_LOOKUPS, REDIS_ROUND_TRIPS
from chirp.trace import current_trace

PREFIX = "chirp:"
VALUE_PREFIX = f"{PREFIX}val.mp:"  # the codec in the name: a JSON-era pod never reads these
ENTRY_PREFIX = f"{PREFIX}entry:"
GEN_PREFIX = f"{PREFIX}gen:"
DOWN_BACKOFF_SECONDS = 1.0
_DOWN = object()  # what attempt() answers when Redis cannot


CACHE_TIMEOUT_SECONDS = 1.0  # a slow cache is skipped: the database answers instead
# A session read that fails logs the user out, so sessions wait longer for a busy Redis (measured
# on the walk: when a 2-core kind node starts stage 5's pods, a 1 s timeout logged users out).
SESSION_TIMEOUT_SECONDS = 3.0

# KEYS[1]: a checked entry (hash: d = dependency names, g = their generations when built, v =
# value); ARGV[1]: the generation key prefix. Returns nil (no entry), {1, v} (current) or
# {0, v, d, g, current generations}. Dependency keys are read by name from the entry, which
# standalone Redis allows (a Redis Cluster would need them in one hash slot).
CHECK_ENTRY_LUA = """
local e = redis.call('HMGET', KEYS[1], 'd', 'g', 'v')
if not e[1] then return nil end
local names = {}
for dep in string.gmatch(e[1], '%S+') do names[#names + 1] = ARGV[1] .. dep end
local now = {}
if #names > 0 then
  local gens = redis.call('MGET', unpack(names))
  for i = 1, #names do now[i] = gens[i] or '0' end
end
local current = table.concat(now, ' ')
if current == e[2] then return {1, e[3]} end
return {0, e[3], e[1], e[2], current}
"""


class CountingConnection(redis.Connection):
    """Counts round trips: one packed send per command, or per pipeline."""

    counted_as = "cache"

    def send_packed_command(self, command, check_health=True):
        REDIS_ROUND_TRIPS.labels(client=self.counted_as).inc()
        super().send_packed_command(command, check_health)


class SessionConnection(CountingConnection):
    counted_as = "sessions"


def make_redis(url: str, socket_timeout: float = CACHE_TIMEOUT_SECONDS,
               connection_class=CountingConnection) -> redis.Redis:
    # redis-py's pool opens a connection per concurrently busy thread and keeps it: sized by the
    # gunicorn threads without a setting of its own.
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=socket_timeout,
                                connection_class=connection_class)


@dataclass(frozen=True)
class CheckedEntry:
    """A checked entry as found: `current` when nothing it depends on changed since it was built."""

    value: object
    current: bool
    stored: dict[str, int]  # dependency -> generation when built ({} when current)
    now: dict[str, int]  # dependency -> generation now ({} when current)

    def changed(self) -> list[str]:
        return [dep for dep, gen in self.stored.items() if self.now.get(dep) != gen]


def _generations(names: str, gens: str) -> dict[str, int]:
    return dict(zip(names.split(), (int(g) for g in gens.split()), strict=True))


class Cache:
    def __init__(self, client: redis.Redis, ttl_seconds: int, stampede_wait_seconds: float):
        self.client = client
        self.ttl = ttl_seconds
        self.stampede_wait = stampede_wait_seconds
        self._down_until = 0.0
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder().decode
        self._check_entry = client.register_script(CHECK_ENTRY_LUA)

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
                pipe.set(f"{GEN_PREFIX}{name}", now_ms, ex=self.ttl * 2)
            pipe.execute()

        self.attempt(action)

    # --- checked entries (precomputed results) -------------------------------------------------
    def read_checked(self, key: str) -> CheckedEntry | None | bool:
        """The entry under key with its freshness; False when there is none, None when the cache is
        down. One round trip."""
        found = self.attempt(lambda r: self._check_entry(
            keys=[f"{ENTRY_PREFIX}{key}"], args=[GEN_PREFIX], client=r), default=_DOWN)
        if found is _DOWN:
            return None
        if found is None:
            CACHE_LOOKUPS.labels(result="miss").inc()
            return False
        value = self._decode(found[1])
        if found[0] == 1:
            CACHE_LOOKUPS.labels(result="hit").inc()
            current_trace().used_cache("hit")
            return CheckedEntry(value, current=True, stored={}, now={})
        CACHE_LOOKUPS.labels(result="miss").inc()
        names = found[2].decode()
        return CheckedEntry(value, current=False, stored=_generations(names, found[3].decode()),
                            now=_generations(names, found[4].decode()))

    def write_checked(self, key: str, generations: dict[str, int], value) -> None:
        """Store value as built under these generations (read before what it was built from)."""
        names = " ".join(generations)
        gens = " ".join(str(g) for g in generations.values())

        def action(r):
            pipe = r.pipeline(transaction=False)
            pipe.hset(f"{ENTRY_PREFIX}{key}",
                      mapping={"d": names, "g": gens, "v": self._encode(value)})
            pipe.expire(f"{ENTRY_PREFIX}{key}", self.ttl)
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
        raw = self.attempt(lambda r: r.mget([f"{GEN_PREFIX}{d}" for d in deps]
                                            + [f"{VALUE_PREFIX}{k}" for k in keys]))
        if raw is None:
            return None
        generations = {d: int(v) if v else 0 for d, v in zip(deps, raw[:len(deps)], strict=True)}
        expected = {k: [generations[d] for d in items[k]] for k in keys}
        values = self._matching(keys, raw[len(deps):], expected)
        missing = [key for key in keys if key not in values]
        CACHE_LOOKUPS.labels(result="hit").inc(len(keys) - len(missing))
        if not missing:
            current_trace().used_cache("hit")
            return values, generations
        CACHE_LOOKUPS.labels(result="miss").inc(len(missing))

        locked = self._lock_and_look_again(missing, expected, uuid.uuid4().hex)
        if locked is None:
            return None
        mine, filled_meanwhile = locked
        values.update(filled_meanwhile)
        theirs = [key for key in missing if key not in mine and key not in filled_meanwhile]
        loaded_any = False
        if mine:
            to_load = [key for key in mine if key not in filled_meanwhile]
            loaded = load_missing(to_load, generations) if to_load else {}
            self._store_and_unlock(loaded, mine, expected)
            values.update(loaded)
            loaded_any = bool(to_load)
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

    def _matching(self, keys: list[str], blobs, expected) -> dict:
        """The values among blobs (aligned with keys) stored under the expected generations."""
        found = {}
        for key, blob in zip(keys, blobs, strict=False):
            if blob is not None:
                stored_under, value = self._decode(blob)
                if stored_under == expected[key]:
                    found[key] = value
        return found

    def _lock_key(self, key, expected) -> str:
        return f"{PREFIX}lock:{key}:{expected[key]}"

    def _lock_and_look_again(self, keys, expected, token):
        """Take the fill lock of each key, and read the values again in the same round trip (a
        filler may have stored and unlocked since our first look). (keys locked, values found),
        or None when the cache is down."""

        def action(r):
            pipe = r.pipeline(transaction=False)
            for key in keys:
                pipe.set(self._lock_key(key, expected), token, nx=True,
                         px=int(self.stampede_wait * 1000) + 1000)
            pipe.mget([f"{VALUE_PREFIX}{key}" for key in keys])
            return pipe.execute()

        results = self.attempt(action)
        if results is None:
            return None
        mine = [key for key, got in zip(keys, results[:-1], strict=True) if got]
        return mine, self._matching(keys, results[-1], expected)

    def _store_and_unlock(self, loaded: dict, locked: list[str], expected) -> None:
        loaded = {key: value for key, value in loaded.items() if value is not None}  # no negatives

        def action(r):
            pipe = r.pipeline(transaction=False)
            for key, value in loaded.items():
                pipe.set(f"{VALUE_PREFIX}{key}", self._encode((expected[key], value)), ex=self.ttl)
            pipe.delete(*[self._lock_key(key, expected) for key in locked])
            pipe.execute()

        self.attempt(action)

    def _read_values(self, keys: list[str], expected) -> dict:
        """The current values of keys (those stored under the expected generations)."""
        raw = self.attempt(lambda r: r.mget([f"{VALUE_PREFIX}{key}" for key in keys]))
        return self._matching(keys, raw or [], expected)

    def _wait_for(self, keys: list[str], expected) -> dict:
        """The values another filler is loading. Most fills take about a millisecond (one indexed
        query): look again soon, then less and less often."""
        deadline = time.monotonic() + self.stampede_wait
        found: dict = {}
        pause = 0.001
        while time.monotonic() < deadline and self.available():
            time.sleep(pause)
            found.update(self._read_values([key for key in keys if key not in found], expected))
            if len(found) == len(keys):
                break
            pause = min(pause * 2, 0.02)
        return found
