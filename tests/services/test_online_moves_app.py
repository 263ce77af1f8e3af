"""Online moves under the real app: `chirp web` (gunicorn) serves writers and readers over HTTP
during the whole copy and cutover. Pods learn the new layout at the cutover from the database
that refuses their write (no restart), so not one request fails and no acknowledged write is lost
or doubled; a pod started later with the old configuration writes correctly too."""

import random
import threading
import time

import pytest
import requests

from chirp.buckets import shard_for_id
from chirp.db.migrate import migrate
from tests.fixtures.processes import free_port
from tests.polling import wait_until
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


class HttpWriter(threading.Thread):
    """Logged-in users of one thread posting and following through the app."""

    def __init__(self, base, users, everyone, seed):
        super().__init__(daemon=True)
        self.base, self.users, self.everyone = base, users, everyone
        self.rng, self.stop = random.Random(seed), threading.Event()
        self.posts, self.follows, self.failures, self.max_seconds = [], set(), [], 0.0

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
def test_app_keeps_writing_through_a_move(separate_databases, start_web, redis_url, shape):
    n_sources, n_targets = SHAPES[shape]
    sources, targets = separate_databases(n_sources), separate_databases(n_targets)
    for url in sources:
        migrate(url)
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
