"""Posting and following: write to the owner's shard primary, then tell caches and timelines."""

from chirp.accounts import find_user
from chirp.db import queries
from chirp.errors import BadRequest, NotFound
from chirp.ids import id_bucket
from chirp.services import Services


def create_post(svc: Services, user: dict, body: str) -> dict:
    bucket = id_bucket(user["id"])
    post = svc.dbs.write_owned(bucket, lambda db: queries.insert_post(db, user["id"], bucket, body))
    # Committed: from here on the post is acknowledged; what follows only speeds up reads.
    if svc.cache is not None:
        svc.cache.bump([f"author:{user['id']}", "public"])
    if svc.timelines is not None:
        svc.cache.attempt(lambda r: svc.timelines.deliver_if_ready(r, post["id"], user["id"]))
        svc.queue.fanout_post(post["id"])
    return post


def _followee(svc: Services, user: dict, username: str, last_write_at) -> dict:
    target = find_user(svc, username, last_write_at)
    if target is None:
        raise NotFound(f"no user named {username!r}")
    if target["id"] == user["id"]:
        raise BadRequest("you cannot follow yourself")
    return target


def set_following(svc: Services, user: dict, username: str, follow: bool,
                  last_write_at: float | None = None) -> bool:
    """Follow or unfollow; True when something changed."""
    target = _followee(svc, user, username, last_write_at)
    change = queries.insert_follow if follow else queries.delete_follow
    # Follows live with the follower.
    changed = svc.dbs.write_owned(id_bucket(user["id"]),
                                  lambda db: change(db, user["id"], target["id"]))
    if svc.cache is not None:
        svc.cache.bump([f"following:{user['id']}"])
    if svc.timelines is not None and changed:
        # The fanned-out timeline no longer matches whom we follow: drop it and have it rebuilt.
        svc.cache.attempt(lambda r: svc.timelines.invalidate(r, user["id"]))
        svc.queue.rebuild_timeline(user["id"])
    return changed

