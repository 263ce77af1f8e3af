"""The bench's dataset: users, Zipf-popular follows, posts interleaved in time, COPYed into one
database (stages 2-4) and into shard databases (stage 5), on a Postgres primary with 2 streaming
replicas.

With BENCH_DATA_DIR set, the cluster lives there and is kept: a later run with the same plan starts
the kept servers (new ports; the replicas are pointed at the primary's new port) instead of seeding
again, which takes minutes for 1M posts on 2 shared cores.
"""

import json
import os
import random
import re
import time
from bisect import bisect
from dataclasses import asdict, dataclass
from itertools import accumulate

import psycopg
from werkzeug.security import generate_password_hash

from chirp.buckets import bucket_for_username, shard_for_id
from chirp.db.migrate import migrate
from chirp.ids import MAX_SEQUENCE, compose_id, id_bucket
from tests.fixtures import processes
from tests.fixtures.postgres import PostgresCluster, PostgresServer

PASSWORD = "bench-password"
SINGLE_DB = "chirp_bench"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Plan:
    users: int
    posts_each: int
    follows_each: int
    shards: int
    zipf_s: float


class Zipf:
    """Ranks 0..n-1 drawn with probability proportional to 1/(rank+1)^s."""

    def __init__(self, n: int, s: float, rng: random.Random):
        self.cumulative = list(accumulate(1 / k**s for k in range(1, n + 1)))
        self.rng = rng

    def draw(self) -> int:
        return bisect(self.cumulative, self.rng.random() * self.cumulative[-1])


def username(rank: int) -> str:
    return f"user{rank:06d}"  # rank = popularity: user000000 is the most followed


def shard_databases(plan: Plan) -> list[str]:
    return [f"chirp_bench_shard{k}" for k in range(plan.shards)]


def _rows(plan: Plan):
    """users (id, username, password_hash), posts (id, author_id, body), follows (follower,
    followee). Ids are composed in the past (one ms per 4096 rows), so they never meet the ids the
    app mints; post j of every user is older than post j+1 of any user (a realistic interleave)."""
    rng = random.Random(42)
    password_hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    total = plan.users * (1 + plan.posts_each)
    start_ms = int(time.time() * 1000) - DAY_MS - total // (MAX_SEQUENCE + 1) - 1
    counter = iter(range(total))

    def mint(bucket: int) -> int:
        n = next(counter)
        return compose_id(start_ms + n // (MAX_SEQUENCE + 1), bucket, n % (MAX_SEQUENCE + 1))

    names = [username(i) for i in range(plan.users)]
    ids = [mint(bucket_for_username(name)) for name in names]
    users = [(uid, name, password_hash) for uid, name in zip(ids, names, strict=True)]
    posts = [(mint(id_bucket(ids[i])), ids[i], f"post {j} by {names[i]}")
             for j in range(plan.posts_each) for i in range(plan.users)]
    popularity = Zipf(plan.users, plan.zipf_s, rng)
    follows = []
    for i in range(plan.users):
        followees = set()
        while len(followees) < min(plan.follows_each, plan.users - 1):
            j = popularity.draw()
            if j != i:
                followees.add(j)
        follows += [(ids[i], ids[j]) for j in sorted(followees)]
    return {"users": users, "posts": posts, "follows": follows}


COLUMNS = {"users": "id, username, password_hash", "posts": "id, author_id, body",
           "follows": "follower_id, followee_id"}
OWNER = {"users": 0, "posts": 1, "follows": 0}


def _copy(url: str, tables: dict[str, list[tuple]]) -> None:
    migrate(url)
    with psycopg.connect(url) as conn:
        with conn.transaction():
            for table, rows in tables.items():
                with conn.cursor() as cur, cur.copy(
                        f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        conn.execute("ANALYZE")


def seed(cluster: PostgresCluster, plan: Plan) -> None:
    rows = _rows(plan)
    for name in [SINGLE_DB, *shard_databases(plan)]:
        cluster.create_database(name)
    _copy(cluster.primary.url(SINGLE_DB), rows)
    for k, name in enumerate(shard_databases(plan)):
        _copy(cluster.primary.url(name),
              {table: [row for row in table_rows
                       if shard_for_id(row[OWNER[table]], plan.shards) == k]
               for table, table_rows in rows.items()})
    cluster.wait_replicated(timeout=600)


# --- the cluster, fresh or kept -------------------------------------------------------------------
def _marker(data_dir: str) -> str:
    return os.path.join(data_dir, "bench-plan.json")


def open_cluster(plan: Plan, data_dir: str | None) -> tuple[PostgresCluster, bool]:
    """(cluster with the plan's data, whether it was seeded now)."""
    if data_dir and os.path.exists(_marker(data_dir)):
        with open(_marker(data_dir)) as f:
            if json.load(f) == asdict(plan):
                return _start_kept(data_dir), False
        raise RuntimeError(f"{data_dir} holds another plan's data: remove it or pick another dir")
    account = processes.service_account("postgres")
    if data_dir:
        os.makedirs(data_dir, exist_ok=True)
        processes.give_to(data_dir, account)
        os.chmod(data_dir, 0o755)
    cluster = PostgresCluster.start(replicas=2, base_dir=data_dir)
    seed(cluster, plan)
    if data_dir:
        with open(_marker(data_dir), "w") as f:
            json.dump(asdict(plan), f)
    return cluster, True


def _start_kept(data_dir: str) -> PostgresCluster:
    account = processes.service_account("postgres")

    def server(name: str) -> PostgresServer:
        return PostgresServer(datadir=os.path.join(data_dir, name), port=processes.free_port(),
                              socket_dir=data_dir, log_path=os.path.join(data_dir, f"{name}.log"),
                              account=account)

    primary = server("primary")
    primary.start(timeout=120)
    replicas = [server(f"replica{n}") for n in (1, 2)]
    for replica in replicas:
        conf = os.path.join(replica.datadir, "postgresql.auto.conf")
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(re.sub(r"port=\d+", f"port={primary.port}", text))
        replica.start(timeout=120)
    cluster = PostgresCluster(base_dir=data_dir, primary=primary, replicas=replicas)
    cluster.wait_replicated(timeout=120)
    return cluster


def close_cluster(cluster: PostgresCluster, keep: bool) -> None:
    if not keep:
        cluster.stop()  # removes the data
        return
    for server in [*cluster.replicas, cluster.primary]:
        server.stop()


# --- working copies: each stage writes into its own copy; the seeded data stays as seeded ---
def working_copies(cluster: PostgresCluster, plan: Plan, stages: list[str]) -> dict[str, list[str]]:
    """Per stage, fresh copies (CREATE DATABASE ... TEMPLATE) of the databases it uses: stage 5
    the shards, the others the single database. Posts written by one stage (or by an earlier run)
    then never change what another stage reads."""
    copies = {}
    with psycopg.connect(cluster.primary.url(), autocommit=True) as conn:
        for stage in stages:
            sources = shard_databases(plan) if stage == "5" else [SINGLE_DB]
            copies[stage] = []
            for source in sources:
                name = f"{source}_s{stage}"
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}" STRATEGY FILE_COPY')
                copies[stage].append(name)
    cluster.wait_replicated(timeout=600)
    return copies


def drop_copies(cluster: PostgresCluster, copies: dict[str, list[str]]) -> None:
    for names in copies.values():
        for name in names:
            cluster.drop_database(name)
