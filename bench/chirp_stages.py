"""Chirp's stage figures, measured on real services started here (Postgres primary + 2 streaming
replicas, Redis, `chirp web` under gunicorn), with the test fixtures used as a library.

Workload: 1,000 users, each following 20 others picked by popularity, 10 posts each. Readers are
drawn from a Zipf(1.1) distribution over users; 2 % of operations are new posts by Zipf-drawn
authors (they invalidate caches and trigger read-your-writes). Every user is logged in beforehand.
For each stage: a warm-up (stage 4: WARMUP operations, for a warm cache), then MEASURED timeline
reads, counted through the app's own chirp_db_queries_total (by route) and timed end to end over
HTTP with 4 client threads.

Prints:
  - database read queries per 1,000 timeline reads, stage 2 vs stage 4 (goal: stage 4 <= 20 %)
  - share of read queries answered by replicas at stage 3 (goal: >= 80 %)
  - timeline requests per second, stage 2 vs stage 4
"""

import os
import random
import re
import sys
import tempfile
import threading
import time
from bisect import bisect
from itertools import accumulate
from pathlib import Path

import psycopg
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from werkzeug.security import generate_password_hash

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))

from chirp.buckets import bucket_for_username  # noqa: E402
from chirp.db.migrate import migrate  # noqa: E402
from tests.fixtures import processes  # noqa: E402
from tests.fixtures.postgres import PostgresCluster  # noqa: E402
from tests.fixtures.redis import RedisServer  # noqa: E402

USERS, FOLLOWS_EACH, POSTS_EACH = 1000, 20, 10
ZIPF_S = 1.1
WRITE_SHARE = 0.02
WARMUP = int(os.environ.get("BENCH_WARMUP", "5000"))
MEASURED = int(os.environ.get("BENCH_MEASURED", "1000"))
CLIENT_THREADS = 4
PASSWORD = "bench-password"


class Zipf:
    def __init__(self, n: int, s: float, rng: random.Random):
        self.cumulative = list(accumulate(1 / k**s for k in range(1, n + 1)))
        self.rng = rng

    def draw(self) -> int:  # 0-based rank
        return bisect(self.cumulative, self.rng.random() * self.cumulative[-1])


def seed(url: str) -> list[str]:
    rng = random.Random(42)
    names = [f"user{i:04d}" for i in range(USERS)]  # index = popularity rank
    password_hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    popularity = Zipf(USERS, ZIPF_S, rng)
    with psycopg.connect(url) as conn:
        ids = [conn.execute("INSERT INTO users (id, username, password_hash)"
                            " VALUES (chirp_next_id(%s), %s, %s) RETURNING id",
                            (bucket_for_username(n), n, password_hash)).fetchone()[0]
               for n in names]
        follows = set()
        for i in range(USERS):
            followees = set()
            while len(followees) < FOLLOWS_EACH:
                j = popularity.draw()
                if j != i:
                    followees.add(j)
            follows.update((ids[i], ids[j]) for j in followees)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO follows (follower_id, followee_id) VALUES (%s, %s)",
                            sorted(follows))
            posts = [(ids[i], bucket_for_username(names[i]), f"post {p} by {names[i]}")
                     for p in range(POSTS_EACH) for i in range(USERS)]
            cur.executemany("INSERT INTO posts (id, author_id, body)"
                            " VALUES (chirp_next_id(%s), %s, %s)",
                            [(b, a, body) for a, b, body in posts])
    return names


def db_reads(base: str) -> dict[str, float]:
    text = requests.get(base + "/metrics", timeout=10).text
    found = {}
    for route, value in re.findall(
            r'^chirp_db_queries_total\{kind="read",route="([^"]+)"\} ([0-9.e+]+)$', text, re.M):
        found[route] = float(value)
    return found


def delta(after: dict, before: dict) -> dict:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


class Load:
    """Logged-in HTTP sessions per user and client thread; Zipf-drawn operations."""

    def __init__(self, base: str, names: list[str]):
        self.base, self.names = base, names
        self.sessions = [dict() for _ in range(CLIENT_THREADS)]

    def login_all(self) -> None:
        def work(t):
            for i, name in enumerate(self.names):
                if i % CLIENT_THREADS == t:
                    for sessions in self.sessions:
                        s = requests.Session()
                        # gunicorn closes idle keep-alive connections: retry a request that met a
                        # connection closed under it (before any response).
                        s.mount("http://", HTTPAdapter(max_retries=Retry(
                            total=3, connect=3, read=2, status=0, allowed_methods=None,
                            backoff_factor=0.01)))
                        r = s.post(self.base + "/api/login",
                                   json={"username": name, "password": PASSWORD}, timeout=30)
                        r.raise_for_status()
                        sessions[name] = s
        self._parallel(work)

    def _parallel(self, work) -> None:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(CLIENT_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def run(self, reads: int, seed: int) -> tuple[int, float]:
        """`reads` timeline reads (+2 % writes) over all threads; (reads done, seconds)."""
        errors = []

        def work(t):
            try:
                steps(t)
            except Exception as error:  # a dead thread must not pass for a finished one
                errors.append(repr(error))

        def steps(t):
            rng = random.Random(seed * 100 + t)
            zipf = Zipf(len(self.names), ZIPF_S, rng)
            sessions = self.sessions[t]
            for n in range(reads // CLIENT_THREADS):
                if rng.random() < WRITE_SHARE:
                    author = self.names[zipf.draw()]
                    r = sessions[author].post(self.base + "/api/posts",
                                              json={"body": f"bench {seed}-{t}-{n}"}, timeout=30)
                    if r.status_code != 201:
                        errors.append(r.status_code)
                reader = self.names[zipf.draw()]
                r = sessions[reader].get(self.base + "/api/timeline", timeout=30)
                if r.status_code != 200:
                    errors.append(r.status_code)

        started = time.perf_counter()
        self._parallel(work)
        elapsed = time.perf_counter() - started
        if errors:
            raise RuntimeError(f"{len(errors)} failed requests: {errors[:5]}")
        return reads // CLIENT_THREADS * CLIENT_THREADS, elapsed


def start_web(env: dict, log_dir: str, name: str):
    port = processes.free_port()
    full = dict(os.environ, **env, PORT=str(port), POD_NAME=f"bench-{name}",
                CHIRP_SECRET_KEY="bench-secret-key-0123456789")
    proc = processes.spawn([sys.executable, "-m", "chirp.cli", "web"],
                           os.path.join(log_dir, f"{name}.log"), env=full)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(base + "/readyz", timeout=5).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"chirp web ({name}) did not start; see {log_dir}/{name}.log")
        time.sleep(0.2)


def measure_stage(name: str, env: dict, names, log_dir, warmup: int) -> dict:
    proc, base = start_web(env, log_dir, name)
    try:
        load = Load(base, names)
        load.login_all()
        cold_before = db_reads(base)
        load.run(MEASURED, seed=1)  # the first MEASURED reads, from a cold cache
        cold = delta(db_reads(base), cold_before)
        load.run(max(warmup - MEASURED, 0), seed=2)
        before = db_reads(base)
        reads, seconds = load.run(MEASURED, seed=3)
        warm = delta(db_reads(base), before)
        return {"reads": reads, "seconds": seconds, "per_1000": sum(warm.values()) * 1000 / reads,
                "cold_per_1000": sum(cold.values()) * 1000 / MEASURED, "routes": warm}
    finally:
        processes.stop(proc)


def main() -> None:
    log_dir = tempfile.mkdtemp(prefix="chirp-bench-")
    print(f"starting Postgres (primary + 2 replicas) and Redis; logs in {log_dir}", flush=True)
    with PostgresCluster.start(replicas=2) as cluster:
        redis_server = RedisServer.start_new()
        try:
            db = cluster.create_database("chirp_bench")
            migrate(cluster.primary.url(db))
            t0 = time.perf_counter()
            names = seed(cluster.primary.url(db))
            cluster.wait_replicated()
            print(f"seeded {USERS} users, {USERS * FOLLOWS_EACH} follows, {USERS * POSTS_EACH}"
                  f" posts in {time.perf_counter() - t0:.1f}s; warm-up {WARMUP} reads,"
                  f" measured {MEASURED}", flush=True)
            primary = cluster.primary.url(db)
            replicas = ",".join(r.url(db) for r in cluster.replicas)
            stages = {
                "2": {"CHIRP_STAGE": "2", "CHIRP_DATABASE_URL": primary},
                "3": {"CHIRP_STAGE": "3", "CHIRP_DATABASE_URL": primary,
                      "CHIRP_REPLICA_URLS": replicas},
                "4": {"CHIRP_STAGE": "4", "CHIRP_DATABASE_URL": primary,
                      "CHIRP_REPLICA_URLS": replicas, "CHIRP_REDIS_URL": redis_server.url(0)},
            }
            results = {}
            for stage, env in stages.items():
                # Only the cache has a state to warm: stages 2 and 3 measure right away.
                warmup = WARMUP if stage == "4" else MEASURED
                results[stage] = measure_stage(f"stage{stage}", env, names, log_dir, warmup)
                r = results[stage]
                print(f"  stage {stage}: {r['per_1000']:.0f} DB reads / 1000 timeline reads"
                      f" (cold cache: {r['cold_per_1000']:.0f}),"
                      f" {r['reads'] / r['seconds']:.0f} req/s,"
                      f" routes {({k: int(v) for k, v in r['routes'].items() if v})}", flush=True)
        finally:
            redis_server.stop()

    two, three, four = results["2"], results["3"], results["4"]
    ratio = four["per_1000"] / two["per_1000"]
    replica_reads = sum(v for k, v in three["routes"].items() if k.startswith("replica"))
    share = replica_reads / max(sum(three["routes"].values()), 1)
    print()
    print("Chirp stage figures (Zipf(1.1) readers, 2 % writes, warm cache after "
          f"{WARMUP} operations)")
    print(f"  DB read queries per 1000 timeline reads: stage 2 = {two['per_1000']:.0f},"
          f" stage 4 = {four['per_1000']:.0f} -> {ratio:.1%} of stage 2"
          f" (goal <= 20%: {'met' if ratio <= 0.20 else 'NOT met'});"
          f" from a cold cache stage 4 = {four['cold_per_1000']:.0f}")
    print(f"  reads served by replicas at stage 3: {share:.1%}"
          f" (goal >= 80%: {'met' if share >= 0.80 else 'NOT met'})")
    print(f"  timeline req/s ({CLIENT_THREADS} client threads, same machine): stage 2 ="
          f" {two['reads'] / two['seconds']:.0f}, stage 4 = {four['reads'] / four['seconds']:.0f}")


if __name__ == "__main__":
    main()
