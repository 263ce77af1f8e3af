"""Timelines, user pages, profiles and the public page, per stage.

- stages 1-3: SQL on the routed database (replica or primary).
- stage 4: cache-aside. The home timeline is merged from cached per-author lists of recent posts
  (one key per author, invalidated by that author's generation), so a new post invalidates one key
  instead of every follower's timeline.
- stage 5: the home timeline comes from the fanned-out sorted set in Redis; when that cannot answer
  it is gathered across the shards (through the same per-author cache when Redis is up).
"""

import heapq

from chirp.db import queries
from chirp.services import Services
from chirp.timeline_merge import AuthorPosts, merge_author_lists
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
    groups = svc.shard_map.group_by_shard(author_ids)
    pages = [
        svc.dbs.read(svc.shard_map.shards[k],
                     lambda db, ids=ids: queries.posts_by_authors(db, ids, before, limit),
                     last_write_at=last_write_at)
        for k, ids in sorted(groups.items())
    ]
    return _merge_newest(pages, limit)


def _recent_lists(svc: Services, author_ids: list[int], last_write_at) -> list[AuthorPosts] | None:
    """Each author's newest K posts through the cache; None when the cache is down."""
    per_author = svc.config.recent_posts_per_author
    items = {f"recent:{a}": (f"author:{a}",) for a in author_ids}

    def load(keys, generations):
        wanted = [int(key.split(":", 1)[1]) for key in keys]
        fresh_after = _fresh_after(last_write_at,
                                   [generations.get(f"author:{a}", 0) for a in wanted])
        by_author = {a: [] for a in wanted}
        for k, ids in sorted(svc.shard_map.group_by_shard(wanted).items()):
            rows = svc.dbs.read(svc.shard_map.shards[k],
                                lambda db, ids=ids: queries.recent_posts_per_author(db, ids,
                                                                                    per_author),
                                last_write_at=fresh_after)
            for row in rows:
                by_author[row["author_id"]].append(row)
        return {f"recent:{a}": posts for a, posts in by_author.items()}

    found = svc.cache.fetch_many(items, load)
    if found is None:
        return None
    lists = found[0]
    return [AuthorPosts(tuple(lists[key]), complete=len(lists[key]) < per_author) for key in items]


def _cached_user_read(svc: Services, user_id: int, key: str, tags: tuple[str, ...], query,
                      last_write_at):
    """One user's row(s) from their shard, cache-aside when there is a cache (stage 4+)."""
    shard = svc.shard_map.shard_for_user_id(user_id)

    def load(generations):
        return svc.dbs.read(shard, lambda db: query(db, user_id),
                            last_write_at=_fresh_after(last_write_at, generations.values()))

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
        authors = sorted(set(_followees(svc, user_id, last_write_at)) | {user_id})
        lists = _recent_lists(svc, authors, last_write_at)
        if lists is not None:
            page = merge_author_lists(lists, before, limit)
            if page is not None:
                trace.served_timeline(f"{gathered} (cached per-author lists)")
                return page
        trace.served_timeline(gathered)
        return posts_by_authors(svc, authors, before, limit, last_write_at)
    trace.served_timeline(gathered)
    if svc.shard_map.sharded:
        authors = sorted(set(_followees(svc, user_id, last_write_at)) | {user_id})
        return posts_by_authors(svc, authors, before, limit, last_write_at)
    shard = svc.shard_map.shards[0]
    return svc.dbs.read(shard, lambda db: queries.home_timeline(db, user_id, before, limit),
                        last_write_at=last_write_at)


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
        for k, ids in sorted(svc.shard_map.group_by_shard(wanted).items()):
            for row in svc.dbs.read(svc.shard_map.shards[k],
                                    lambda db, ids=ids: queries.posts_by_ids(db, ids),
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
        lists = _recent_lists(svc, [user_id], last_write_at)
        if lists is not None:
            page = merge_author_lists(lists, before, limit)
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
