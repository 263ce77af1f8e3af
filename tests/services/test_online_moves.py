"""Online moves (`chirp move ...`) between separate Postgres servers while writers keep writing.

The writers are real clients of the routing contract (docs/moves.md): they write to the shard of
the row's owner, and a write refused with CH001 follows the refusing database's routing record
(chirp.move.handoff), exactly as the app does. Every acknowledged write must end up on the new
side once, on its owner's shard; none may fail.
"""

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from chirp.buckets import bucket_for_username, shard_for_bucket, shard_for_id
from chirp.db.migrate import migrate
from chirp.move import handoff, layout, online
from tests.polling import wait_until
from tests.services.conftest import chirp_command

USERS = 40


def move_command(step, sources, targets, *extra) -> list[str]:
    return chirp_command("move", step, "--from", ",".join(sources), "--to", ",".join(targets),
                         *extra)


def run_move(step, sources, targets, *extra, expect=0) -> dict | str:
    result = subprocess.run(move_command(step, sources, targets, *extra), capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == expect, result.stdout + result.stderr
    return json.loads(result.stdout) if expect == 0 else result.stderr


def query(url, sql, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


class Layout:
    """The shard URLs writers use right now, switched when a refusal points elsewhere."""

    def __init__(self, urls):
        self._lock = threading.Lock()
        self.urls, self.epoch = tuple(urls), 0

    def current(self):
        with self._lock:
            return self.urls, self.epoch

    def follow(self, urls, epoch):
        with self._lock:
            if epoch > self.epoch:
                self.urls, self.epoch = tuple(urls), epoch


class Writer(threading.Thread):
    """Posts and follows for random users until stopped; records what was acknowledged."""

    def __init__(self, layout, users, seed, reads=False, pause=0.002):
        super().__init__(daemon=True)
        self.pause = pause
        self.layout, self.users, self.rng = layout, users, random.Random(seed)
        self.reads, self.seed = reads, seed
        self.stop, self.conns = threading.Event(), {}
        self.posts, self.follows, self.failures, self.read_count = [], set(), [], 0
        self.latencies = []  # (finished at, seconds) of every acknowledged write

    def _conn(self, url):
        if url not in self.conns or self.conns[url].closed:
            self.conns[url] = psycopg.connect(url, autocommit=True)
        return self.conns[url]

    def _write(self, owner, sql, params):
        started = time.monotonic()
        while True:
            urls, epoch = self.layout.current()
            url = urls[shard_for_id(owner, len(urls))]
            try:
                row = self._conn(url).execute(sql, params).fetchone()
                finished = time.monotonic()
                self.latencies.append((finished, finished - started))
                return row
            except psycopg.Error as error:
                if not handoff.is_moved_error(error):
                    raise
                state, refused_epoch, shard_urls = self._conn(url).execute(
                    handoff.ROUTING_SQL).fetchone()
                step = handoff.after_refusal(handoff.Routing(state, refused_epoch,
                                                             tuple(shard_urls)),
                                             epoch, time.monotonic() - started)
                if step.action == "reroute":
                    self.layout.follow(step.shard_urls, step.epoch)
                elif step.action == "wait":
                    time.sleep(handoff.RETRY_PAUSE_SECONDS)
                else:
                    raise

    def _read(self, owner):
        urls, _ = self.layout.current()
        self._conn(urls[shard_for_id(owner, len(urls))]).execute(
            "SELECT count(*) FROM posts WHERE author_id = %s", (owner,)).fetchone()
        self.read_count += 1

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            author = self.rng.choice(self.users)
            try:
                if self.reads:
                    self._read(author)
                elif n % 4 == 0:
                    followee = self.rng.choice([u for u in self.users if u != author])
                    self._write(author, "INSERT INTO follows (follower_id, followee_id)"
                                " VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                                (author, followee))
                    self.follows.add((author, followee))
                else:
                    body = f"w{self.seed}-{n}"
                    (post_id,) = self._write(
                        author, "INSERT INTO posts (id, author_id, body)"
                        " VALUES (chirp_next_id(%s), %s, %s) RETURNING id",
                        ((author >> 12) & 1023, author, body))
                    self.posts.append((post_id, author, body))
            except Exception as error:  # any failure is what the test counts
                self.failures.append(repr(error))
            time.sleep(self.pause)
        for conn in self.conns.values():
            conn.close()


class Traffic:
    """Writer threads and a reader thread over the sources' layout for the whole move."""

    def __init__(self, sources, users, writers=4, pause=0.002):
        self.layout = Layout(sources)
        self.threads = [Writer(self.layout, users, seed, pause=pause) for seed in range(writers)]
        self.threads.append(Writer(self.layout, users, 99, reads=True))
        for thread in self.threads:
            thread.start()

    def acknowledged(self) -> int:
        return sum(len(t.posts) + len(t.follows) for t in self.threads if not t.reads)

    def let_writes_land(self, count: int = 20) -> None:
        """Wait until the writers have had `count` more writes acknowledged (wherever the
        layout sends them now), so the step that follows has writes of this phase to carry."""
        target = self.acknowledged() + count
        wait_until(lambda: self.acknowledged() >= target, timeout=30,
                   what=f"{count} more acknowledged writes")

    def finish(self) -> dict:
        for thread in self.threads:
            thread.stop.set()
        for thread in self.threads:
            thread.join(30)
        writers = [t for t in self.threads if not t.reads]
        reader = self.threads[-1]
        return {"posts": [p for t in writers for p in t.posts],
                "follows": set().union(*(t.follows for t in writers)),
                "failures": [f for t in self.threads for f in t.failures],
                "reads": reader.read_count,
                "latencies": sorted(lat for t in writers for lat in t.latencies),
                "max_write_seconds": max(s for t in writers for _, s in t.latencies)}


def seed_sources(sources) -> dict:
    """Users on the source shard of their bucket, each with a few posts and follows."""
    for url in sources:
        migrate(url)
    users, posts, follows = [], [], set()
    for i in range(USERS):
        name = f"user{i}"
        bucket = bucket_for_username(name)
        url = sources[shard_for_bucket(bucket, len(sources))]
        (uid,) = query(url, "INSERT INTO users (id, username, password_hash)"
                       " VALUES (chirp_next_id(%s), %s, 'x') RETURNING id", (bucket, name))[0]
        users.append(uid)
        for j in range(5):
            (pid,) = query(url, "INSERT INTO posts (id, author_id, body) VALUES"
                           " (chirp_next_id(%s), %s, %s) RETURNING id",
                           (bucket, uid, f"seed {j}"))[0]
            posts.append((pid, uid, f"seed {j}"))
    rng = random.Random(1)
    for uid in users:
        for other in rng.sample([u for u in users if u != uid], 3):
            url = sources[shard_for_id(uid, len(sources))]
            query(url, "INSERT INTO follows (follower_id, followee_id) VALUES (%s, %s)",
                  (uid, other))
            follows.add((uid, other))
    return {"users": users, "posts": posts, "follows": follows}


def assert_holds_exactly(urls, seeded, traffic):
    """Row by row: every acknowledged write once, on its owner's shard, nothing else."""
    assert traffic["failures"] == []
    expected_posts = sorted(seeded["posts"] + traffic["posts"])
    expected_follows = sorted(seeded["follows"] | traffic["follows"])
    posts, follows, users = [], [], []
    for k, url in enumerate(urls):
        shard_posts = query(url, "SELECT id, author_id, body FROM posts")
        assert all(shard_for_id(p[0], len(urls)) == k for p in shard_posts)
        posts += shard_posts
        follows += query(url, "SELECT follower_id, followee_id FROM follows")
        users += [u for (u,) in query(url, "SELECT id FROM users")]
    assert len(posts) == len(set(posts)) and sorted(posts) == expected_posts
    assert sorted(follows) == expected_follows
    assert sorted(users) == sorted(seeded["users"])


def cutover_ready(sources, targets) -> bool:
    """What `chirp move status` reports as cutover_ready, asked in this process: a poll through
    the command costs a Python start-up (about 1 s of CPU on a busy 2-core runner) per try."""
    move = online.open_move(sources, targets)
    try:
        return online.status(move)["cutover_ready"]
    finally:
        move.close()


def wait_until_ready(sources, targets, timeout=90.0) -> dict:
    wait_until(lambda: cutover_ready(sources, targets), timeout=timeout, interval=0.3,
               what="the move cutover-ready")
    status = run_move("status", sources, targets)  # the command itself agrees
    assert status["cutover_ready"], status
    return status


def cut_over_with_traffic(separate_databases, n_sources: int, n_targets: int):
    """Seeded sources under write traffic, moved and cut over to new targets."""
    sources, targets = separate_databases(n_sources), separate_databases(n_targets)
    seeded = seed_sources(sources)
    traffic = Traffic(sources, seeded["users"])
    run_move("start", sources, targets)
    wait_until_ready(sources, targets)
    run_move("cutover", sources, targets)
    return sources, targets, seeded, traffic


SHAPES = {"copy 1->1": (1, 1), "reshard 1->2": (1, 2), "reshard 2->3": (2, 3),
          "merge 3->1": (3, 1)}


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_move_while_writing_loses_duplicates_and_fails_nothing(separate_databases, shape):
    n_sources, n_targets = SHAPES[shape]
    sources, targets = separate_databases(n_sources), separate_databases(n_targets)
    seeded = seed_sources(sources)
    traffic = Traffic(sources, seeded["users"])
    traffic.let_writes_land()
    started = run_move("start", sources, targets)
    assert started["phase"] == "copying" and started["rows_total"] > 0
    status = wait_until_ready(sources, targets)
    assert all(s["initial_copy_done"] for s in status["streams"].values())
    assert len(status["streams"]) == len(layout.streams("x", n_sources, n_targets, "forward"))
    traffic.let_writes_land()
    done = run_move("cutover", sources, targets)
    assert done["phase"] == "cut-over"
    assert all(t["ok"] for t in done["cutover"]["tables"].values())
    for step in ("start", "cutover"):  # rerun after success: nothing to do, nothing changes
        again = run_move(step, sources, targets)
        assert again["phase"] == "cut-over" and "cutover" not in again
    traffic.let_writes_land()  # writers continue on the new layout
    result = traffic.finish()
    held = {k: v for k, v in done["cutover"].items() if k.endswith("_seconds")}
    print(f"\n{shape}: {len(result['posts'])} posts, {len(result['follows'])} follows written,"
          f" {result['reads']} reads; writes held {held}; longest write"
          f" {result['max_write_seconds']:.3f} s")
    assert_holds_exactly(targets, seeded, result)
    assert result["reads"] > 0
    for url in sources:  # the old side follows along (undo streams) until `complete`
        assert query(url, "SELECT state, shard_urls FROM chirp_routing")[0][0] == "retired"
    completed = run_move("complete", sources, targets)
    assert completed["phase"] == "completed" and completed["streams"] == {}
    for url in sources + targets:
        assert query(url, "SELECT count(*) FROM pg_subscription")[0][0] == 0
        assert query(url, "SELECT count(*) FROM pg_publication")[0][0] == 0
    assert run_move("complete", sources, targets)["phase"] == "completed"  # idempotent


@pytest.mark.slow
def test_reverse_returns_to_the_sources_with_every_write(separate_databases):
    sources, targets, seeded, traffic = cut_over_with_traffic(separate_databases, 1, 2)
    traffic.let_writes_land()  # on the targets only
    reversed_ = run_move("reverse", sources, targets)
    assert reversed_["phase"] == "reversed"
    traffic.let_writes_land()  # and now on the sources again
    result = traffic.finish()
    print(f"\nreverse: longest write {result['max_write_seconds']:.3f} s,"
          f" writes held {reversed_['reverse']['locked_seconds']} s")
    assert_holds_exactly(sources, seeded, result)
    assert query(sources[0], "SELECT state FROM chirp_routing")[0][0] == "live"
    assert run_move("reverse", sources, targets)["phase"] == "reversed"  # idempotent
    aborted = run_move("abort", sources, targets)
    assert aborted["phase"] is None
    for url in sources + targets:
        assert query(url, "SELECT count(*) FROM pg_subscription")[0][0] == 0


# Each line is printed once the step before it is done; the move is killed right after it.
KILL_POINTS = [("start", "targets on standby"), ("start", "replicating"),
               ("cutover", "undo streams made"), ("cutover", "checksummed before the lock"),
               ("cutover", "locked:"), ("cutover", "caught up"), ("cutover", "verified"),
               ("cutover", "decision recorded"), ("cutover", "retired"),
               ("cutover", "live:"), ("cutover", "feeds dropped")]


def kill_after(step, sources, targets, line) -> None:
    """Run the step and SIGKILL it right after it prints `line` (the engine's failpoint)."""
    result = subprocess.run(move_command(step, sources, targets), capture_output=True, text=True,
                            timeout=180, env=dict(os.environ, **{online.CRASH_AFTER_ENV: line}))
    assert result.returncode == -signal.SIGKILL, f"{step} ended without printing {line!r}"
    assert line in result.stderr.splitlines()[-1], result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["reshard 1->2", "reshard 2->3"])
def test_killed_at_every_step_and_rerun_keeps_every_guarantee(separate_databases, shape):
    n_sources, n_targets = SHAPES[shape]
    sources, targets = separate_databases(n_sources), separate_databases(n_targets)
    seeded = seed_sources(sources)
    traffic = Traffic(sources, seeded["users"])
    for step, line in KILL_POINTS:
        if line == "undo streams made":  # the first kill point of the cutover
            wait_until_ready(sources, targets)
        kill_after(step, sources, targets, line)  # after "retired", writes wait for the rerun
        time.sleep(0.2)  # writers go on between kills; after "retired" they are held, so
        #                 there is no acknowledged write to wait for here
    done = run_move("cutover", sources, targets)
    assert done["phase"] == "cut-over"
    traffic.let_writes_land()
    result = traffic.finish()
    print(f"\n{shape} killed at {len(KILL_POINTS)} steps: longest write"
          f" {result['max_write_seconds']:.3f} s")
    assert_holds_exactly(targets, seeded, result)


@pytest.mark.slow
def test_a_cutover_killed_between_its_decision_and_the_commits_finishes_on_rerun(
        separate_databases):
    """The window SIGKILL rarely hits: the decision is recorded, the sources' locking
    transactions died uncommitted, so they are live again and took writes. Reproduced exactly:
    the decision is one row on the coordinator."""
    sources, targets = separate_databases(2), separate_databases(3)
    seeded = seed_sources(sources)
    traffic = Traffic(sources, seeded["users"])
    run_move("start", sources, targets)
    wait_until_ready(sources, targets)
    query(targets[0], "UPDATE chirp_moves SET phase = 'cutover-committed', epoch = 1")
    traffic.let_writes_land()  # the live sources take writes the feeds carry on
    done = run_move("cutover", sources, targets)
    assert done["phase"] == "cut-over" and all(t["ok"] for t in done["cutover"]["tables"].values())
    traffic.let_writes_land()
    result = traffic.finish()
    assert_holds_exactly(targets, seeded, result)
    for url in sources:
        assert query(url, "SELECT state FROM chirp_routing") == [("retired",)]


@pytest.mark.slow
def test_reverse_killed_at_every_step_and_rerun_returns_every_write(separate_databases):
    sources, targets, seeded, traffic = cut_over_with_traffic(separate_databases, 1, 2)
    traffic.let_writes_land()
    for line in ("checksummed before the lock", "locked:", "caught up", "decision recorded",
                 "retired", "live:"):
        kill_after("reverse", sources, targets, line)
        time.sleep(0.2)  # writers go on between kills; after "retired" they are held, so
        #                 there is no acknowledged write to wait for here
    assert run_move("reverse", sources, targets)["phase"] == "reversed"
    traffic.let_writes_land()
    result = traffic.finish()
    print(f"\nreverse killed at 6 steps: longest write {result['max_write_seconds']:.3f} s")
    assert_holds_exactly(sources, seeded, result)


def test_bad_requests_are_refused_and_change_nothing(separate_databases):
    source, target, busy = separate_databases(3)
    seed_sources([source])
    migrate(busy)
    query(busy, "INSERT INTO users (id, username, password_hash)"
          " VALUES (chirp_next_id(1), 'x', 'x')")

    def refused(sources, targets, step="start"):
        return run_move(step, sources, targets, "--wait-for-databases", "1", expect=2)

    assert "already holds data" in refused([source], [busy])
    assert "appears twice" in refused([source], [source])
    unknown = source.rsplit(":", 1)[0] + ":1/nowhere"
    assert "cannot reach" in refused([source], [unknown])
    # a step an operator's Job runs fails instead (exit 1): a new pod tries again
    assert "cannot reach" in run_move("complete", [source], [unknown], "--wait-for-databases",
                                      "1", expect=1)
    assert "cannot cutover a move in phase none" in refused([source], [target], "cutover")
    assert query(target, "SELECT state FROM chirp_routing")[0][0] == "live"

    run_move("start", [source], [target])
    second = separate_databases(1)
    assert "part of another move" in refused([source], second)
    other_source = separate_databases(1)
    migrate(other_source[0])
    assert "another move" in refused(other_source, [target])
    assert "not the live database" in refused([target], second)
    assert run_move("abort", [source], [target])["aborted"] is True
    assert query(target, "SELECT count(*) FROM users")[0][0] == 0  # abort emptied it
    assert query(source, "SELECT count(*) FROM pg_publication")[0][0] == 0
    assert query(source, "SELECT state FROM chirp_routing")[0][0] == "live"


def test_seed_fills_each_shard_with_its_own_rows(separate_databases):
    shards = separate_databases(2)
    result = subprocess.run(chirp_command("seed", "--url", ",".join(shards), "--users", "60",
                                          "--posts", "3", "--follows", "4"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == {"users": 60, "posts": 180, "follows": 240}
    users = posts = follows = 0
    for k, url in enumerate(shards):
        owners = query(url, "SELECT id FROM users UNION ALL SELECT id FROM posts"
                            " UNION ALL SELECT follower_id FROM follows")
        assert owners and all(shard_for_id(owner, 2) == k for (owner,) in owners)
        users += query(url, "SELECT count(*) FROM users")[0][0]
        posts += query(url, "SELECT count(*) FROM posts")[0][0]
        follows += query(url, "SELECT count(*) FROM follows")[0][0]
    assert (users, posts, follows) == (60, 180, 240)


@pytest.mark.slow
def test_a_cutover_that_cannot_finish_in_time_aborts_and_the_source_stays_live(
        separate_databases):
    sources, targets = separate_databases(1), separate_databases(2)
    seeded = seed_sources(sources)
    traffic = Traffic(sources, seeded["users"])
    run_move("start", sources, targets)
    wait_until_ready(sources, targets)
    with psycopg.connect(sources[0]) as long_writer:  # a write transaction that will not end
        long_writer.execute("LOCK TABLE follows IN ROW EXCLUSIVE MODE")
        stderr = run_move("cutover", sources, targets, "--bound-seconds", "1", expect=1)
        assert "aborted, the old databases stay live" in stderr
        assert query(sources[0], "SELECT state FROM chirp_routing")[0][0] == "live"
        assert run_move("status", sources, targets)["phase"] == "copying"
        traffic.let_writes_land()  # writes went on to the source
    done = run_move("cutover", sources, targets)
    assert done["phase"] == "cut-over"
    traffic.let_writes_land()
    result = traffic.finish()
    print(f"\naborted cutover then cutover: longest write {result['max_write_seconds']:.3f} s")
    assert_holds_exactly(targets, seeded, result)


def cutover_paused_after(sources, targets, line, act, resume_file) -> tuple[int, dict | str]:
    """`cutover`, held right after its progress line `line` while act() runs (the engine's
    pause failpoint); its exit code and its JSON (exit 0) or stderr."""
    env = dict(os.environ, **{online.PAUSE_AFTER_ENV: line,
                              online.RESUME_FILE_ENV: str(resume_file)})
    process = subprocess.Popen(move_command("cutover", sources, targets), env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    try:
        for stderr_line in process.stderr:
            seen.append(stderr_line)
            if line in stderr_line:
                act()
                break
    finally:
        resume_file.touch()
        stdout, stderr = process.communicate(timeout=180)
    resume_file.unlink()
    assert any(line in s for s in seen), "".join(seen) + stderr
    return process.returncode, json.loads(stdout) if process.returncode == 0 else "".join(
        seen) + stderr


def on_standby(url, sql, params=()) -> None:
    """A write no app could make there, as logical replication's apply worker writes; committed
    asynchronously, as many clients commit (visible at once, its WAL flushed a moment later)."""
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("SET LOCAL synchronous_commit = off")
        assert conn.execute(sql, params).rowcount == 1


def unflushed(url) -> bool:
    """Whether the server holds WAL it has not flushed yet (the last commit, just above)."""
    return query(url, "SELECT pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn()")[0][0]


@contextlib.contextmanager
def wal_writer_stopped(url):
    """The server's WAL writer frozen (SIGSTOP): an asynchronous commit stays unflushed until a
    backend flushes WAL itself. It makes the moment after such a commit, a few ms on a live
    server, last as long as the test needs: the engine must not rely on it having passed."""
    (pid,) = query(url, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.slow
def test_rows_written_after_the_checksums_are_verified_under_the_lock(separate_databases,
                                                                      tmp_path):
    """The whole tables are checksummed before the lock; under it only the rows written since
    are read again. Writes made in between are verified (the cutover goes through), and a row
    changed on the new side behind replication's back, after the checksums or under the lock
    itself, fails the cutover: nothing switches. That holds for a change committed asynchronously
    whose WAL is not flushed yet when the cutover looks (decoding reads flushed WAL only)."""
    sources, targets = separate_databases(1), separate_databases(2)
    source = sources[0]
    seeded = seed_sources(sources)
    run_move("start", sources, targets)
    wait_until_ready(sources, targets)
    post_id, author, _ = seeded["posts"][7]
    holder = targets[shard_for_id(post_id, 2)]
    resume = tmp_path / "resume"

    frozen = contextlib.ExitStack()

    def corrupt():  # the copy's row, changed on the new side only, its WAL not flushed yet
        frozen.enter_context(wal_writer_stopped(holder))
        on_standby(holder, "UPDATE posts SET body = body || '!' WHERE id = %s", (post_id,))
        assert unflushed(holder)

    def repair():
        on_standby(holder, "UPDATE posts SET body = rtrim(body, '!') WHERE id = %s", (post_id,))

    def nothing_switched():
        assert query(source, "SELECT state FROM chirp_routing")[0][0] == "live"
        assert [query(t, "SELECT state FROM chirp_routing")[0][0] for t in targets] == \
            ["standby", "standby"]
        assert run_move("status", sources, targets)["phase"] == "copying"
        assert query(source, "SELECT count(*) FROM pg_subscription")[0][0] == 0  # undo dropped

    bucket = (post_id >> 12) & 1023
    for pause_after in ("checksummed before the lock", "caught up"):  # before / under the lock
        with frozen:  # until the cutover has ended
            code, stderr = cutover_paused_after(sources, targets, pause_after, corrupt, resume)
        assert code == 1 and "verification failed" in stderr, stderr
        assert f"'differing_buckets': [{bucket}]" in stderr
        nothing_switched()
        repair()

    follower, followee = sorted(seeded["follows"])[3]

    def write_meanwhile():  # app writes on the live source: the feeds carry them on
        query(source, "INSERT INTO posts (id, author_id, body) VALUES (chirp_next_id(%s), %s,"
              " 'between')", ((author >> 12) & 1023, author))
        query(source, "DELETE FROM follows WHERE follower_id = %s AND followee_id = %s",
              (follower, followee))

    code, done = cutover_paused_after(sources, targets, "checksummed before the lock",
                                      write_meanwhile, resume)
    assert code == 0 and done["phase"] == "cut-over"
    report = done["cutover"]
    assert all(t["ok"] for t in report["tables"].values())
    assert report["rechecked_keys"] >= 4  # the post and the follow, on the old and the new side
    for sql in ("SELECT id, author_id, body FROM posts",
                "SELECT follower_id, followee_id FROM follows"):
        assert sorted(row for url in targets for row in query(url, sql)) == \
            sorted(query(source, sql))
    assert (follower, followee) not in query(source, "SELECT follower_id, followee_id FROM follows")
