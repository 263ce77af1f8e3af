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
- An entry loaded before its dependencies are known (a first page: whom the user follows and
  their posts in one query) is stored *settled*: the generations are read after the load, and
  only those older than what the load's snapshot surely holds are trusted; the others are
  stored as -1, so the next read repairs those authors instead of trusting a possibly stale page.
- A miss takes a short lock per key (SET NX, in the same round trip as a second look); concurrent
  readers of the same hot key wait for the winner's fill instead of all hitting the database
  (stampede protection). Hits never touch a lock.
- Values are MessagePack (msgspec): several times faster to decode than JSON for lists of posts;
  replies are parsed by hiredis (C) when installed, as it is in the image.
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
# value); KEYS[2..]: cache-aside values, then their generations, to read instead when there is no
# entry. ARGV[1]: the generation key prefix; ARGV[2]: the value key prefix; ARGV[3..]: pairs
# (dependency prefix, value name prefix): the values of changed dependencies to read along (e.g.
# author:<id> -> recent:<id>). Returns {-1, those values} (no entry), {1, v} (current) or {0, v,
# d, g, current generations, the changed dependencies' values}. Dependency keys are read by name
# from the entry, which standalone Redis allows (a Redis Cluster would need them in one hash slot).
CHECK_ENTRY_LUA = """
local e = redis.call('HMGET', KEYS[1], 'd', 'g', 'v')
if not e[1] then
  if #KEYS == 1 then return {-1, {}} end
  local other = {}
  for i = 2, #KEYS do other[#other + 1] = KEYS[i] end
  return {-1, redis.call('MGET', unpack(other))}
end
local deps, names = {}, {}
for dep in string.gmatch(e[1], '%S+') do
  deps[#deps + 1] = dep
  names[#names + 1] = ARGV[1] .. dep
end
local now = {}
if #names > 0 then
  local gens = redis.call('MGET', unpack(names))
  for i = 1, #names do now[i] = gens[i] or '0' end
end
local current = table.concat(now, ' ')
if current == e[2] then return {1, e[3]} end
local stored, related = {}, {}
for g in string.gmatch(e[2], '%S+') do stored[#stored + 1] = g end
for i = 1, #deps do
  if stored[i] ~= now[i] then
    for j = 3, #ARGV - 1, 2 do
      local p = ARGV[j]
      if string.sub(deps[i], 1, #p) == p then
        related[#related + 1] = ARGV[2] .. ARGV[j + 1] .. string.sub(deps[i], #p + 1)
        break
      end
    end
  end
end
local values = {}
if #related > 0 then values = redis.call('MGET', unpack(related)) end
return {0, e[3], e[1], e[2], current, values}
"""

# Stores a checked entry built from a snapshot known to hold every write committed before
# `settled before` (ms), some of whose dependencies' generations were read before (given), the
# others now, after the snapshot: a generation set before that instant is held by the snapshot (a
# write bumps after its commit) and is stored as is; a later one may be a write the snapshot
# missed and is stored as -1, which never matches (the next read repairs it). KEYS[1]: the entry;
# ARGV: generation key prefix, settled before, ttl, value, n, n (name, generation) pairs, then the
# names to read.
WRITE_SETTLED_LUA = """
local n = tonumber(ARGV[5])
local deps, gens = {}, {}
for i = 1, n do
  deps[i] = ARGV[4 + 2 * i]
  gens[i] = ARGV[5 + 2 * i]
end
local names = {}
for i = 6 + 2 * n, #ARGV do
  deps[#deps + 1] = ARGV[i]
  names[#names + 1] = ARGV[1] .. ARGV[i]
end
if #names > 0 then
  local now = redis.call('MGET', unpack(names))
  local before = tonumber(ARGV[2])
  for i = 1, #names do
    local g = now[i] or '0'
    if tonumber(g) >= before then g = '-1' end
    gens[n + i] = g
  end
end
redis.call('HSET', KEYS[1], 'd', table.concat(deps, ' '), 'g', table.concat(gens, ' '),
           'v', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class CountingConnection(redis.Connection):
    """Counts round trips: one packed send per command, or per pipeline."""

    counted_as = "cache"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The counter's child once per connection: labels() takes a lock and a lookup per call.
        self._round_trips = REDIS_ROUND_TRIPS.labels(client=self.counted_as)

    def send_packed_command(self, command, check_health=True):
        self._round_trips.inc()
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
class Looked:
    """Generations and stored values already read in another round trip (with a checked entry),
    so that fetch_many need not read them again."""

    generations: dict[str, int]
    blobs: dict[str, bytes | None]  # cache-aside key -> the stored value as found

    def covers(self, items: dict[str, tuple[str, ...]]) -> bool:
        return all(key in self.blobs and all(dep in self.generations for dep in deps)
                   for key, deps in items.items())


@dataclass(frozen=True)
class CheckedEntry:
    """A checked entry as found: `current` when nothing it depends on changed since it was built;
    `found` False when there is none. `looked` holds what was read along (see read_checked)."""

    value: object
    current: bool
    stored: dict[str, int]  # dependency -> generation when built ({} when current)
    now: dict[str, int]  # dependency -> generation now ({} when current)
    found: bool = True
    looked: Looked | None = None

    def changed(self) -> list[str]:
        return [dep for dep, gen in self.stored.items() if self.now.get(dep) != gen]


def _related_key(dep: str, related: dict[str, str]) -> str | None:
    """The cache-aside key a changed dependency maps to (as CHECK_ENTRY_LUA maps it)."""
    for prefix, value_prefix in related.items():
        if dep.startswith(prefix):
            return value_prefix + dep[len(prefix):]
    return None


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
        self._write_settled = client.register_script(WRITE_SETTLED_LUA)

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
    def read_checked(self, key: str, on_miss: dict[str, tuple[str, ...]] | None = None,
                     related: dict[str, str] | None = None) -> CheckedEntry | None:
        """The entry under key with its freshness, None when the cache is down. One round trip,
        which also reads what the caller needs next: when there is no entry, the cache-aside
        items `on_miss` ({key: generation names}); when it is stale, the values of its changed
        dependencies that `related` maps to ({dependency prefix: value key prefix})."""
        on_miss = on_miss or {}
        miss_deps = sorted({dep for deps in on_miss.values() for dep in deps})
        mapping = [part for pair in (related or {}).items() for part in pair]
        found = self.attempt(lambda r: self._check_entry(
            keys=[f"{ENTRY_PREFIX}{key}", *(f"{VALUE_PREFIX}{k}" for k in on_miss),
                  *(f"{GEN_PREFIX}{d}" for d in miss_deps)],
            args=[GEN_PREFIX, VALUE_PREFIX, *mapping], client=r), default=_DOWN)
        if found is _DOWN:
            return None
        if found[0] == -1:
            CACHE_LOOKUPS.labels(result="miss").inc()
            blobs = found[1]
            looked = Looked(
                generations={d: int(g) if g else 0
                             for d, g in zip(miss_deps, blobs[len(on_miss):], strict=True)},
                blobs=dict(zip(on_miss, blobs[:len(on_miss)], strict=True)))
            return CheckedEntry(None, current=False, stored={}, now={}, found=False,
                                looked=looked)
        value = self._decode(found[1])
        if found[0] == 1:
            CACHE_LOOKUPS.labels(result="hit").inc()
            current_trace().used_cache("hit")
            return CheckedEntry(value, current=True, stored={}, now={})
        CACHE_LOOKUPS.labels(result="miss").inc()
        names = found[2].decode()
        stored = _generations(names, found[3].decode())
        now = _generations(names, found[4].decode())
        changed = [dep for dep, gen in stored.items() if now[dep] != gen]
        keys = [_related_key(dep, related or {}) for dep in changed]
        keys = [k for k in keys if k is not None]
        return CheckedEntry(value, current=False, stored=stored, now=now,
                            looked=Looked(now, dict(zip(keys, found[5], strict=True))))

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

    def _settled_args(self, known: dict[str, int], settle: list[str],
                      holds_writes_before: float, value) -> list:
        pairs = [item for name, gen in known.items() for item in (name, gen)]
        return [GEN_PREFIX, int(holds_writes_before * 1000), self.ttl, self._encode(value),
                len(known), *pairs, *settle]

    def write_settled(self, key: str, known: dict[str, int], settle: list[str],
                      holds_writes_before: float, value) -> None:
        """Store value as built under the `known` generations (read before what it was built
        from) and those of `settle`, read now: its snapshot holds every write committed before
        `holds_writes_before` (epoch seconds, writers' clocks). One round trip."""
        self.attempt(lambda r: self._write_settled(
            keys=[f"{ENTRY_PREFIX}{key}"],
            args=self._settled_args(known, settle, holds_writes_before, value), client=r))

    def queue_settled(self, pipe, key: str, known: dict[str, int], settle: list[str],
                      holds_writes_before: float, value) -> None:
        """write_settled, queued into another round trip (EVAL: a pipeline with a registered
        script would first ask Redis whether it knows it, one more round trip)."""
        pipe.eval(WRITE_SETTLED_LUA, 1, f"{ENTRY_PREFIX}{key}",
                  *self._settled_args(known, settle, holds_writes_before, value))

    # --- cache-aside with stampede protection -------------------------------------------------
    def fetch_many(self, items: dict[str, tuple[str, ...]], load_missing,
                   looked: Looked | None = None, also_store=None):
        """Values for items {key: generation names it depends on}, in one round trip when all hit.

        A stored value remembers the generations it was loaded under and only counts as a hit
        while they are current. Misses are filled by load_missing(keys, generations) -> {key:
        value}, where generations maps each dependency to the time (ms) of its last write, so the
        loader can avoid replicas that may not hold that write yet. Returns (values, generations),
        or None when the cache is down (the caller reads the database itself). `looked`: the
        generations and values as read already (then no round trip when all hit). `also_store`
        (pipeline) queues more writes into the round trip that stores what this call loaded.
        """
        if not items:
            return {}, {}
        keys = list(items)
        deps = sorted({dep for names in items.values() for dep in names})
        if looked is not None and looked.covers(items):
            generations = {d: looked.generations[d] for d in deps}
            blobs = [looked.blobs[k] for k in keys]
        else:
            raw = self.attempt(lambda r: r.mget([f"{GEN_PREFIX}{d}" for d in deps]
                                                + [f"{VALUE_PREFIX}{k}" for k in keys]))
            if raw is None:
                return None
            generations = {d: int(v) if v else 0
                           for d, v in zip(deps, raw[:len(deps)], strict=True)}
            blobs = raw[len(deps):]
        expected = {k: [generations[d] for d in items[k]] for k in keys}
        values = self._matching(keys, blobs, expected)
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
            self._store_and_unlock(loaded, mine, expected, also_store)
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

    def _store_and_unlock(self, loaded: dict, locked: list[str], expected,
                          also_store=None) -> None:
        loaded = {key: value for key, value in loaded.items() if value is not None}  # no negatives

        def action(r):
            pipe = r.pipeline(transaction=False)
            for key, value in loaded.items():
                pipe.set(f"{VALUE_PREFIX}{key}", self._encode((expected[key], value)), ex=self.ttl)
            pipe.delete(*[self._lock_key(key, expected) for key in locked])
            if also_store is not None:
                also_store(pipe)
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
