"""Online moves under the real app: `chirp web` (gunicorn) serves writers and readers over HTTP
during the whole copy and cutover. Pods learn the new layout at the cutover from the database
that refuses their write (no restart), so not one request fails and no acknowledged write is lost
or doubled; a pod started later with the old configuration writes correctly too. Where the stage
has Redis and Celery (sharded), a real `chirp worker` fans every post out meanwhile: each one
reaches its author's and every follower's timeline, on whichever shard they live, and no task
fails."""

import random
import re
import threading
import time

import pytest
import redis
import requests

from chirp.buckets import shard_for_id
from chirp.config import Config
from chirp.db.migrate import migrate
from chirp.fanout import timeline_key
from chirp.ids import EPOCH_MS
from tests.fixtures.processes import free_port
from tests.polling import WaitTimeout, wait_until
from tests.services.conftest import ChirpProcess, stage_env, wait_http
from tests.services.test_online_moves import SHAPES, query, run_move, wait_until_ready

PASSWORD = "correct horse"
WRITERS, USERS_PER_WRITER = 4, 3


def app_env(urls, redis_url, port) -> dict:
    if len(urls) == 1:
        return stage_env(2, database=urls[0], PORT=str(port))
    return stage_env(5, shards=urls, redis_url=redis_url, broker_url=redis_url.replace("/0", "/1"),
                     PORT=str(port))


@pytest.fixture
def start_web(tmp_path):
    servers = []

    def start(urls, redis_url) -> str:
        port = free_port()
        server = ChirpProcess(["web"], app_env(urls, redis_url, port),
                              str(tmp_path / f"web{len(servers)}.log"))
        servers.append(server)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthz", proc=server)
        return base

    yield start
    for server in servers:
        server.stop()


def fans_out(urls) -> bool:
    """Whether the app runs sharded here (stage 5: Redis, Celery, fan-out), see app_env."""
    return len(urls) > 1


@pytest.fixture
def start_worker(tmp_path):
    workers = []

    def start(urls, redis_url) -> ChirpProcess:
        # With its thread pool the worker takes up to `concurrency` tasks per poll of the broker,
        # about one poll a second; the writers post some 15 a second.
        worker = ChirpProcess(["worker", "--concurrency", "16"],
                              app_env(urls, redis_url, free_port()),
                              str(tmp_path / f"worker{len(workers)}.log"))
        workers.append(worker)
        worker.wait_for_log("ready.", timeout=60)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def timelines_lacking(redis_url, posts, follows, user_ids) -> dict[int, list[int]]:
    """Per user, the acknowledged posts of the people they follow and their own that their
    fanned-out timeline lacks, among the newest it keeps (Config.fanout_timeline_cap)."""
    cap = Config.__dataclass_fields__["fanout_timeline_cap"].default
    by_author: dict[int, list[int]] = {}
    for post_id, author, _ in posts:
        by_author.setdefault(author, []).append(post_id)
    client = redis.Redis.from_url(redis_url)
    lacking = {}
    try:
        for uid in user_ids:
            authors = {uid} | {followee for follower, followee in follows if follower == uid}
            expected = sorted((p for a in authors for p in by_author.get(a, [])),
                              reverse=True)[:cap]
            held = {int(p) for p in client.zrange(timeline_key(uid), 0, -1)}
            if missing := [p for p in expected if p not in held]:
                lacking[uid] = missing
    finally:
        client.close()
    return lacking


def fanouts_run(worker) -> int:
    return len(set(re.findall(r"chirp\.fanout_post\[([0-9a-f-]+)\] succeeded", worker.log())))


def described(lacking: dict[int, list[int]], posts, followed_at, cutover_at: float) -> str:
    """What the timelines lack: per (follower, author), the posts by when they were made and
    when the follow was acknowledged, in seconds from the cutover's end."""
    author_of = {post_id: author for post_id, author, _ in posts}
    pairs: dict[tuple[int, int], list[float]] = {}
    for uid, post_ids in lacking.items():
        for post_id in post_ids:
            made = ((post_id >> 22) + EPOCH_MS) / 1000 - cutover_at
            pairs.setdefault((uid, author_of[post_id]), []).append(round(made, 2))
    lines = [f"follower {f} author {a}: followed at"
             f" {round(followed_at[(f, a)] - cutover_at, 2) if (f, a) in followed_at else None},"
             f" {len(made)} posts lacking, made {min(made)} .. {max(made)}"
             for (f, a), made in sorted(pairs.items())]
    return "timelines lack posts:\n" + "\n".join(lines[:20])


def assert_fanned_out(worker, redis_url, posts, follows, followed_at, user_ids,
                      cutover_at) -> None:
    """Once the worker has run a fan-out for every post (and the rebuilds that follows asked
    for): every post in its author's and every follower's timeline, and not one task failed."""
    def waited(condition, timeout, what):
        try:
            wait_until(lambda: worker.check_running() or condition(), timeout=timeout,
                       interval=0.5, what=what)
        except WaitTimeout:
            pass  # the assertions below name what is missing

    started = time.monotonic()
    waited(lambda: fanouts_run(worker) >= len(posts), 300, "a fan-out for every post")
    print(f"fan-out: {fanouts_run(worker)} tasks for {len(posts)} posts, the last done"
          f" {time.monotonic() - started:.1f} s after the writers stopped")
    assert fanouts_run(worker) >= len(posts)
    waited(lambda: not timelines_lacking(redis_url, posts, follows, user_ids), 60,
           "the timeline rebuilds the follows asked for")
    lacking = timelines_lacking(redis_url, posts, follows, user_ids)
    assert lacking == {}, described(lacking, posts, followed_at, cutover_at)
    failed = [line for line in worker.log().splitlines() if " raised " in line or "ERROR" in line]
    assert failed == [], "\n".join(failed[:20])


class HttpWriter(threading.Thread):
    """Logged-in users of one thread posting and following through the app."""

    def __init__(self, base, users, everyone, seed):
        super().__init__(daemon=True)
        self.base, self.users, self.everyone = base, users, everyone
        self.rng, self.stop = random.Random(seed), threading.Event()
        self.posts, self.follows, self.failures, self.max_seconds = [], set(), [], 0.0
        self.followed_at = {}  # (follower, followee) -> when the follow was first acknowledged

    def _timed(self, session, method, path, **kwargs):
        started = time.monotonic()
        response = session.request(method, self.base + path, timeout=30, **kwargs)
        self.max_seconds = max(self.max_seconds, time.monotonic() - started)
        return response

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            name, session, uid = self.rng.choice(self.users)
            try:
                if n % 4 == 0:
                    other, other_id = self.rng.choice([u for u in self.everyone if u[0] != name])
                    response = self._timed(session, "POST", f"/api/users/{other}/follow")
                    if response.status_code == 200:
                        self.follows.add((uid, other_id))
                        self.followed_at.setdefault((uid, other_id), time.time())
                else:
                    body = f"{name} #{n}"
                    response = self._timed(session, "POST", "/api/posts", json={"body": body})
                    if response.status_code == 201:
                        self.posts.append((int(response.json()["post"]["id"]), uid, body))
                if response.status_code not in (200, 201):
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
            except requests.RequestException as error:
                self.failures.append(repr(error))
            time.sleep(0.005)


class HttpReader(threading.Thread):
    def __init__(self, base, names):
        super().__init__(daemon=True)
        self.base, self.names, self.stop = base, names, threading.Event()
        self.answered, self.failures = 0, []

    def run(self):
        rng = random.Random(7)
        while not self.stop.is_set():
            for path in (f"/api/users/{rng.choice(self.names)}", "/api/public"):
                try:
                    response = requests.get(self.base + path, timeout=30)
                    if response.status_code == 200:
                        self.answered += 1
                    else:
                        self.failures.append(f"{path}: {response.status_code}")
                except requests.RequestException as error:
                    self.failures.append(repr(error))
            time.sleep(0.01)


def sign_up_everyone(base) -> list[list[tuple]]:
    """WRITERS groups of (username, logged-in session, user id)."""
    groups = []
    for w in range(WRITERS):
        group = []
        for i in range(USERS_PER_WRITER):
            session, name = requests.Session(), f"writer{w}_{i}"
            response = session.post(base + "/api/signup",
                                    json={"username": name, "password": PASSWORD})
            assert response.status_code == 201, response.text
            group.append((name, session, int(response.json()["user"]["id"])))
        groups.append(group)
    return groups


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_app_keeps_writing_through_a_move(separate_databases, start_web, start_worker, redis_url,
                                          shape):
    n_sources, n_targets = SHAPES[shape]
    sources, targets = separate_databases(n_sources), separate_databases(n_targets)
    for url in sources:
        migrate(url)
    worker = start_worker(sources, redis_url) if fans_out(sources) else None
    base = start_web(sources, redis_url)
    groups = sign_up_everyone(base)
    everyone = [(name, uid) for group in groups for name, _, uid in group]
    writers = [HttpWriter(base, group, everyone, seed) for seed, group in enumerate(groups)]
    reader = HttpReader(base, [name for name, _ in everyone])
    for thread in [*writers, reader]:
        thread.start()

    def let_writes_land(count=20):
        """Until `count` more writes are acknowledged over HTTP (not a clock)."""
        def acknowledged():
            return sum(len(w.posts) + len(w.follows) for w in writers)
        target = acknowledged() + count
        wait_until(lambda: acknowledged() >= target, timeout=30,
                   what=f"{count} more acknowledged writes")

    run_move("start", sources, targets)
    wait_until_ready(sources, targets)
    let_writes_land()  # during the copy
    done = run_move("cutover", sources, targets)
    cutover_at = time.time()
    let_writes_land()  # the pod now writes to the targets
    late_pod = start_web(sources, redis_url)  # an old pod of a rolling Deployment
    name, _, uid = groups[0][0]
    session = requests.Session()  # its own cookie jar: cookies do not tell ports apart
    assert session.post(late_pod + "/api/login",
                        json={"username": name, "password": PASSWORD}).status_code == 200
    late = session.post(late_pod + "/api/posts", json={"body": "from a pod started late"})
    assert late.status_code == 201, late.text
    for thread in [*writers, reader]:
        thread.stop.set()
    for thread in [*writers, reader]:
        thread.join(60)

    failures = [f for w in writers for f in w.failures]
    acked_posts = sorted(p for w in writers for p in w.posts)
    acked_posts.append((int(late.json()["post"]["id"]), uid, "from a pod started late"))
    acked_follows = set().union(*(w.follows for w in writers))
    longest = max(w.max_seconds for w in writers)
    print(f"\n{shape} through gunicorn: {len(acked_posts)} posts, {len(acked_follows)} follows,"
          f" {reader.answered} reads; writes held {done['cutover']['locked_seconds']} s;"
          f" longest write {longest:.3f} s")
    assert failures == [] and reader.failures == []
    assert reader.answered > 0 and len(acked_posts) > 0
    posts, follows = [], set()
    for k, url in enumerate(targets):
        shard_posts = query(url, "SELECT id, author_id, body FROM posts")
        assert all(shard_for_id(post_id, len(targets)) == k for post_id, _, _ in shard_posts)
        posts += shard_posts
        follows |= set(query(url, "SELECT follower_id, followee_id FROM follows"))
    assert len(posts) == len(set(posts))
    assert sorted(posts) == sorted(acked_posts)  # row by row: all acknowledged, nothing else
    assert follows == acked_follows
    if worker is not None:
        ids = [uid for _, uid in everyone]
        shards = max(len(sources), len(targets))  # followers on another shard than the author
        assert any(shard_for_id(a, shards) != shard_for_id(b, shards) for a, b in follows)
        followed_at = {pair: at for w in writers for pair, at in w.followed_at.items()}
        assert_fanned_out(worker, redis_url, acked_posts, acked_follows, followed_at, ids,
                          cutover_at)
