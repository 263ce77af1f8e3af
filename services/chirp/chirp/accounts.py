"""Sign up, log in, look users up. A user's rows live on the shard of their username's bucket."""

from werkzeug.security import check_password_hash, generate_password_hash

from chirp.buckets import bucket_for_username
from chirp.db import queries
from chirp.errors import Conflict, NotLoggedIn
from chirp.services import Services


def _dummy_hash(method: str) -> str:
    """A hash in the configured method that matches no password: checking against it costs what
    checking a real user's hash costs, so response times do not tell which usernames exist."""
    return f"{method}$no-such-user${'0' * 64}"


def sign_up(svc: Services, username: str, password: str) -> dict:
    bucket = bucket_for_username(username)
    password_hash = generate_password_hash(password, method=svc.config.password_method)
    user = svc.dbs.write_owned(
        bucket, lambda db: queries.insert_user(db, bucket, username, password_hash))
    if user is None:
        raise Conflict(f"username {username!r} is taken")
    if svc.timelines is not None:  # a new user's fanned-out timeline is complete: it is empty
        svc.cache.attempt(lambda r: svc.timelines.rebuild(r, user["id"], []))
    return {"id": user["id"], "username": user["username"]}


def _lookup(svc: Services, username: str, last_write_at: float | None) -> dict | None:
    """From a replica when allowed; a miss there is re-checked on the primary (it may lag)."""
    shard = svc.dbs.layout(last_write_at).shard_for_username(username)
    user = svc.dbs.read(shard, lambda db: queries.user_by_name(db, username),
                        last_write_at=last_write_at)
    if user is None and shard.replica_urls:
        now = float("inf")
        user = svc.dbs.read(svc.dbs.layout(now).shard_for_username(username),
                            lambda db: queries.user_by_name(db, username), last_write_at=now)
    return user


def log_in(svc: Services, username: str, password: str) -> dict:
    user = _lookup(svc, username, None)
    if user is None:
        check_password_hash(_dummy_hash(svc.config.password_method), password)
        raise NotLoggedIn("wrong username or password")
    if not check_password_hash(user["password_hash"], password):
        raise NotLoggedIn("wrong username or password")
    return {"id": user["id"], "username": user["username"]}


def find_user(svc: Services, username: str, last_write_at: float | None = None) -> dict | None:
    """{id, username} or None. Usernames never change: the cache keeps them without a generation."""

    def load():
        user = _lookup(svc, username, last_write_at)
        return {"id": user["id"], "username": user["username"]} if user else None

    if svc.cache is None:
        return load()
    return svc.cache.fetch(f"user:{username}", (), lambda _generations: load())
