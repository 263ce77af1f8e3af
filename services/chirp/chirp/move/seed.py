"""`chirp seed`: fill a stage's databases with users, posts and follows quickly (COPY), each row on
the shard of its owner's bucket, so moves and benches start from realistic volumes.

Ids are composed here rather than minted by chirp_next_id(): time-ordered, in the past (one
millisecond per 4096 rows, ending a day ago), so they never meet ids the app mints now.
Every seeded user logs in with the password SEED_PASSWORD.
"""

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from werkzeug.security import generate_password_hash

from chirp.buckets import bucket_for_username, shard_for_id
from chirp.db.migrate import migrate
from chirp.ids import MAX_SEQUENCE, compose_id, id_bucket

SEED_PASSWORD = "seed-password"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class SeedPlan:
    users: int
    posts_per_user: int
    follows_per_user: int
    prefix: str = "seed"  # usernames are <prefix><n>: pick another prefix to seed again
    random_seed: int = 1


def _id_minter(start_ms: int) -> Iterator[callable]:
    """Yields, for row n, an id with a fresh (millisecond, sequence) pair and the given bucket."""
    n = 0
    while True:
        ms, sequence = start_ms + n // (MAX_SEQUENCE + 1), n % (MAX_SEQUENCE + 1)
        yield lambda bucket, ms=ms, sequence=sequence: compose_id(ms, bucket, sequence)
        n += 1


def rows(plan: SeedPlan, now_ms: int) -> dict[str, list[tuple]]:
    """Every row to insert, pure: users (id, username, password_hash), posts (id, author_id,
    body), follows (follower_id, followee_id)."""
    rng = random.Random(plan.random_seed)
    password_hash = generate_password_hash(SEED_PASSWORD, method="pbkdf2:sha256:1000")
    total = plan.users * (1 + plan.posts_per_user)
    mint = _id_minter(now_ms - DAY_MS - total // (MAX_SEQUENCE + 1) - 1)
    users = []
    for i in range(plan.users):
        name = f"{plan.prefix}{i}"
        users.append((next(mint)(bucket_for_username(name)), name, password_hash))
    posts = [(next(mint)(id_bucket(uid)), uid, f"post {j} by {name}")
             for uid, name, _ in users for j in range(plan.posts_per_user)]
    ids = [uid for uid, _, _ in users]
    follows = []
    for uid in ids:
        count = min(plan.follows_per_user, len(ids) - 1)
        follows += [(uid, other) for other in rng.sample([o for o in ids if o != uid], count)]
    return {"users": users, "posts": posts, "follows": follows}


def _copy(conn, table: str, columns: str, table_rows: list[tuple]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in table_rows:
            copy.write_row(row)


def seed(shard_urls: list[str], plan: SeedPlan) -> dict[str, int]:
    """COPY the plan's rows into the shards (shard 0 first; one URL: unsharded). Returns counts."""
    planned = rows(plan, int(time.time() * 1000))
    owner_column = {"users": 0, "posts": 1, "follows": 0}
    columns = {"users": "id, username, password_hash", "posts": "id, author_id, body",
               "follows": "follower_id, followee_id"}
    for k, url in enumerate(shard_urls):
        migrate(url)
        with psycopg.connect(url) as conn, conn.transaction():
            for table in ("users", "posts", "follows"):
                mine = [row for row in planned[table]
                        if shard_for_id(row[owner_column[table]], len(shard_urls)) == k]
                _copy(conn, table, columns[table], mine)
    return {table: len(table_rows) for table, table_rows in planned.items()}
