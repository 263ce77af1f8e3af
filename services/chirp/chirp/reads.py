"""Timelines, user pages, profiles and the public page, per stage.

- stages 1-3: SQL on the routed database (replica or primary).
- stage 4: cache-aside. The home timeline is merged from cached per-author lists of recent posts
  (one key per author, invalidated by that author's generation), so a new post invalidates one key
  instead of every follower's timeline. The merged page itself is cached as a checked entry (see
  cache.py): served in one round trip while none of its authors wrote, and repaired from the lists
  of only those who did. A first-time reader's page comes with whom they follow in one query
  (no per-author lists to fill), stored settled (cache.py).
- stage 5: the home timeline comes from the fanned-out sorted set in Redis; when that cannot answer
  it is gathered across the shards (through the same per-author cache when Redis is up).

Every database read first asks svc.dbs.layout() which shards hold the rows now (a data move may
have replaced the configured ones), with the recency the read needs.
"""

import heapq
import time
from dataclasses import dataclass

from chirp.db import queries
from chirp.routing import CLOCK_MARGIN_SECONDS
from chirp.services import Services
from chirp.timeline_merge import AuthorPosts, merge_author_lists, repair_page
from chirp.trace import current_trace


def _fresh_after(last_write_at: float | None, generations_ms) -> float | None:
    """Reads that fill a cache must not see a replica older than the writes they describe."""
    times = [g / 1000 for g in generations_ms if g]
    if last_write_at is not None:
        times.append(last_write_at)
    return max(times) if times else None


def _merge_newest(pages, limit: int) -> list[dict]:
    return list(heapq.merge(*pages, key=lambda post: -post["id"]))[:limit]


# --- posts by authors across shards ---------------------------------------------------------------
def posts_by_authors(svc: Services, author_ids, before: int | None, limit: int,
                     last_write_at: float | None) -> list[dict]:
    """The newest `limit` posts (older than `before`) of these authors, from their shards."""
    groups = svc.dbs.layout(last_write_at).group_by_shard(author_ids)
    pages = [
        svc.dbs.read(shard, lambda db, ids=ids: queries.posts_by_authors(db, ids, before, limit),
                     last_write_at=last_write_at)
        for shard, ids in groups
    ]
    return _merge_newest(pages, limit)


def _recent_lists(svc: Services, author_ids: list[int], last_write_at,
                  looked=None) -> tuple[list[AuthorPosts], dict[str, int]] | None:
    """Each author's newest K posts through the cache, with the generations they are current
    under; None when the cache is down."""
    per_author = svc.config.recent_posts_per_author
    items = {f"recent:{a}": (f"author:{a}",) for a in author_ids}

    def load(keys, generations):
        wanted = [int(key.split(":", 1)[1]) for key in keys]
        fresh_after = _fresh_after(last_write_at,
                                   [generations.get(f"author:{a}", 0) for a in wanted])
        by_author = {a: [] for a in wanted}
        for shard, ids in svc.dbs.layout(fresh_after).group_by_shard(wanted):
            rows = svc.dbs.read(shard,
                                lambda db, ids=ids: queries.recent_posts_per_author(db, ids,
                                                                                    per_author),
                                last_write_at=fresh_after)
            for row in rows:
                by_author[row["author_id"]].append(row)
        return {f"recent:{a}": posts for a, posts in by_author.items()}

    found = svc.cache.fetch_many(items, load, looked)
    if found is None:
        return None
    lists, generations = found
    return ([AuthorPosts(tuple(lists[key]), complete=len(lists[key]) < per_author)
             for key in items], generations)


def _cached_user_read(svc: Services, user_id: int, key: str, tags: tuple[str, ...], query,
                      last_write_at):
    """One user's row(s) from their shard, cache-aside when there is a cache (stage 4+)."""

    def load(generations):
        fresh_after = _fresh_after(last_write_at, generations.values())
        return svc.dbs.read(svc.dbs.layout(fresh_after).shard_for_id(user_id),
                            lambda db: query(db, user_id), last_write_at=fresh_after)

    if svc.cache is None:
        return load({})
    return svc.cache.fetch(key, tags, load)


def _followees(svc: Services, user_id: int, last_write_at) -> list[int]:
    return _cached_user_read(svc, user_id, f"following:{user_id}", (f"following:{user_id}",),
                             queries.followee_ids, last_write_at)


# --- home timeline --------------------------------------------------------------------------------
def home_timeline(svc: Services, user_id: int, before: int | None, limit: int,
                  last_write_at: float | None = None) -> list[dict]:
    trace = current_trace()
    if svc.timelines is not None:
        page = _home_from_fanout(svc, user_id, before, limit, last_write_at)
        if page is not None:
            trace.served_timeline("fanout")
            return page
    gathered = "scatter-gather" if svc.shard_map.sharded else "database"
    if svc.cache is not None:
        built = _home_from_cache(svc, user_id, before, limit, last_write_at)
        if built is not None:
            page, how = built
            trace.served_timeline(f"{gathered} ({how})")
            return page
    trace.served_timeline(gathered)
    layout = svc.dbs.layout(last_write_at)
    # A reshard may have spread an unsharded stage's rows (until the operator rolls stage 5 out).
    if svc.shard_map.sharded or len(layout.shards) > 1:
        authors = sorted(set(_followees(svc, user_id, last_write_at)) | {user_id})
        return posts_by_authors(svc, authors, before, limit, last_write_at)
    return svc.dbs.read(layout.shards[0],
                        lambda db: queries.home_timeline(db, user_id, before, limit),
                        last_write_at=last_write_at)


# A first page is read no staler than this, so that replicas (checked every replica_check_seconds)
# may answer it; authors who wrote since are stored unsettled and repaired on the next read.
FIRST_PAGE_SETTLE_SECONDS = 2.0


def snapshot_holds_writes_before(started: float, from_primary: bool, required: float,
                                 layout_verified_at: float) -> float:
    """The instant (writers' clocks) before which every committed write is in a read's snapshot:
    a primary's snapshot begins after `started` (this pod's clock); a replica was proven to hold
    the writes acknowledged before `required`; and the layout was known current at its check."""
    source = started - CLOCK_MARGIN_SECONDS if from_primary else required
    return min(source, layout_verified_at - CLOCK_MARGIN_SECONDS)


@dataclass(frozen=True)
class BuiltPage:
    page: list[dict]
    how: str
    generations: dict[str, int]  # read before what the page was built from
    # (dependencies whose generations are read after, the instant the snapshot holds writes before)
    settled: tuple[list[str], float] | None = None
    stored: bool = False  # stored already (with the fill it came from)


def _home_from_cache(svc: Services, user_id: int, before: int | None, limit: int,
                     last_write_at) -> tuple[list[dict], str] | None:
    """Stage 4's home page: the cached page while nothing it was built from changed (one round
    trip); repaired from the changed authors' lists when only authors wrote; otherwise rebuilt
    (a first-time reader: whom they follow and the page in one query). None when the cache is
    down."""
    key = f"home:{user_id}:{before or 0}:{limit}"
    following = f"following:{user_id}"
    # Read along, in the same round trip: whom the user follows (no page yet), or the lists of
    # the authors who wrote since the page was built (a stale page).
    entry = svc.cache.read_checked(key, on_miss={following: (following,)},
                                   related={"author:": "recent:"})
    if entry is None:
        return None
    if entry.current:
        return entry.value, "cached page"
    built = None
    if entry.found and following not in entry.changed():
        built = _repaired_page(svc, entry, before, limit, last_write_at)
    if built is None:
        built = _rebuilt_page(svc, user_id, key, before, limit, last_write_at,
                              entry.looked if not entry.found else None)
    if built is None:
        return None
    if built.settled is not None and not built.stored:
        svc.cache.write_settled(key, built.generations, *built.settled, built.page)
    elif built.settled is None:
        svc.cache.write_checked(key, built.generations, built.page)
    return built.page, built.how


def _repaired_page(svc: Services, entry, before, limit, last_write_at) -> BuiltPage | None:
    changed = [int(dep.split(":", 1)[1]) for dep in entry.changed() if dep.startswith("author:")]
    found = _recent_lists(svc, changed, last_write_at, entry.looked)
    if found is None:
        return None
    lists, generations = found
    page = repair_page(entry.value, limit, set(changed), lists, before)
    if page is None:
        return None
    return BuiltPage(page, "cached page, repaired", {**entry.stored, **generations})


def _rebuilt_page(svc: Services, user_id: int, key: str, before, limit, last_write_at,
                  looked=None) -> BuiltPage | None:
    """None when the cache is down; `looked`: whom the user follows as read with the entry. A
    first page is stored under `key` in the round trip that stores whom the user follows."""
    following = f"following:{user_id}"
    one_database = not svc.shard_map.sharded and len(svc.dbs.layout(last_write_at).shards) == 1
    first: dict = {}

    def load_followees(keys, generations):
        fresh_after = _fresh_after(last_write_at, generations.values())
        if not one_database:
            shard = svc.dbs.layout(fresh_after).shard_for_id(user_id)
            return {following: svc.dbs.read(shard, lambda db: queries.followee_ids(db, user_id),
                                            last_write_at=fresh_after)}
        # Whom they follow and the page at once (a first-time reader). Its authors' generations
        # are read afterwards: only those set before what the snapshot surely holds are trusted.
        started = time.time()
        required = max(fresh_after or 0.0, started - FIRST_PAGE_SETTLE_SECONDS)
        layout = svc.dbs.layout(required)
        _, layout_verified_at = svc.shard_map.current_verified()
        label, (followees, page) = svc.dbs.read(
            layout.shard_for_id(user_id),
            lambda db: (db.label, queries.first_home_page(db, user_id, before, limit)),
            last_write_at=required)
        first.update(page=page, followees=followees, generations=dict(generations),
                     holds=snapshot_holds_writes_before(started, "replica" not in label,
                                                        required, layout_verified_at))
        return {following: followees}

    def store_first_page(pipe):  # with whom they follow: one round trip less
        if first:
            authors = sorted(set(first["followees"]) | {user_id})
            svc.cache.queue_settled(pipe, key, first["generations"],
                                    [f"author:{a}" for a in authors], first["holds"],
                                    first["page"])
            first["stored"] = True

    found = svc.cache.fetch_many({following: (following,)}, load_followees, looked,
                                 also_store=store_first_page)
    if found is None:
        return None
    followees, generations = found[0][following], dict(found[1])
    authors = sorted(set(followees) | {user_id})
    if first:
        return BuiltPage(first["page"], "first page", generations,
                         settled=([f"author:{a}" for a in authors], first["holds"]),
                         stored=first.get("stored", False))
    found = _recent_lists(svc, authors, last_write_at)
    if found is None:
        return None
    lists, author_generations = found
    generations.update(author_generations)
    page = merge_author_lists(lists, before, limit)
    if page is not None:
        return BuiltPage(page, "cached per-author lists", generations)
    # Deeper than the lists reach: ask the database, no older than the generations we tag it with.
    page = posts_by_authors(svc, authors, before, limit,
                            _fresh_after(last_write_at, author_generations.values()))
    return BuiltPage(page, "database page, cached", generations)


def _home_from_fanout(svc, user_id, before, limit, last_write_at) -> list[dict] | None:
    ids = svc.cache.attempt(lambda r: svc.timelines.read(r, user_id, before, limit))
    if ids is None:
        if svc.cache.available() and svc.cache.attempt(
                lambda r: svc.timelines.claim_rebuild(r, user_id)):
            svc.queue.rebuild_timeline(user_id)
        return None
    return posts_by_ids(svc, ids, last_write_at)


def posts_by_ids(svc: Services, post_ids: list[int], last_write_at=None) -> list[dict]:
    """Hydrate post ids (posts never change: cached without generation), newest first."""
    if not post_ids:
        return []

    def load(keys, _generations=None):
        wanted = [int(key.split(":", 1)[1]) for key in keys]
        found = {}
        for shard, ids in svc.dbs.layout(last_write_at).group_by_shard(wanted):
            for row in svc.dbs.read(shard, lambda db, ids=ids: queries.posts_by_ids(db, ids),
                                    last_write_at=last_write_at):
                found[f"post:{row['id']}"] = row
        return {key: found.get(key) for key in keys}

    keys = {f"post:{pid}": () for pid in post_ids}
    found = svc.cache.fetch_many(keys, load)
    posts = found[0] if found is not None else load(list(keys))
    return sorted((p for p in posts.values() if p), key=lambda p: -p["id"])


# --- a user's own posts, profile, public page -----------------------------------------------------
def user_posts(svc: Services, user_id: int, before: int | None, limit: int,
               last_write_at: float | None = None) -> list[dict]:
    if svc.cache is not None and limit <= svc.config.recent_posts_per_author:
        found = _recent_lists(svc, [user_id], last_write_at)
        if found is not None:
            page = merge_author_lists(found[0], before, limit)
            if page is not None:
                return page
    return posts_by_authors(svc, [user_id], before, limit, last_write_at)


def profile(svc: Services, user_id: int, last_write_at: float | None = None) -> dict | None:
    return _cached_user_read(svc, user_id, f"profile:{user_id}",
                             (f"author:{user_id}", f"following:{user_id}"), queries.profile,
                             last_write_at)


def public_posts(svc: Services, before: int | None, limit: int,
                 last_write_at: float | None = None) -> list[dict]:
    def load(generations):
        pages = svc.dbs.read_all_shards(lambda db: queries.public_posts(db, before, limit),
                                        last_write_at=_fresh_after(last_write_at,
                                                                   generations.values()))
        return _merge_newest(pages.values(), limit)

    if svc.cache is None:
        return load({})
    return svc.cache.fetch(f"public:{before or 0}:{limit}", ("public",), load)
