"""`chirp load`'s loop against an in-memory app: the JSON lines, stopping, re-login after a lost
session, and a verdict for each way a write can go wrong."""

import io
import itertools
import json
import threading

from chirp.load import client, run
from chirp.load.client import Answer


class FakeApp:
    """The JSON API in memory; tests bend it (forget sessions, lose answers, lose rows)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.users = {}  # name -> password
        self.sessions = {}  # token -> name
        self.posts = []  # [id, author, body]
        self.ids = itertools.count(1000)
        self.tokens = itertools.count(1)
        self.post_calls = 0
        self.on_post = None  # (app, posts asked for before) -> None | "lose-answer" | "refuse"
        self.sessions_not_kept = 0  # this many next sessions are issued but not remembered

    def _session(self, name):
        token = f"t{next(self.tokens)}"
        if self.sessions_not_kept:
            self.sessions_not_kept -= 1
        else:
            self.sessions[token] = name
        return Answer(201, {"user": {"username": name}}, ms=1.0,
                      cookies={"chirp_session": token})

    def _user(self, cookies):
        return self.sessions.get((cookies or {}).get("chirp_session"))

    def signup(self, name, password):
        with self.lock:
            if name in self.users:
                return Answer(409, ms=1.0)
            self.users[name] = password
            return self._session(name)

    def login(self, name, password):
        with self.lock:
            if self.users.get(name) != password:
                return Answer(401, ms=1.0)
            answer = self._session(name)
            answer.status = 200
            return answer

    def post(self, cookies, body):
        with self.lock:
            author = self._user(cookies)
            if author is None:
                return Answer(401, ms=1.0)
            fate = self.on_post(self, self.post_calls) if self.on_post else None
            self.post_calls += 1
            if fate == "refuse":
                return Answer(503, {"error": "retry"}, ms=2.0)
            post_id = str(next(self.ids))
            self.posts.append([post_id, author, body])
            if fate == "lose-answer":
                return Answer(None, ms=3.0, failure=client.TIMED_OUT)
            return Answer(201, {"post": {"id": post_id}}, ms=2.0)

    def follow(self, cookies, name):
        with self.lock:
            return Answer(200 if self._user(cookies) else 401, ms=1.0)

    def timeline(self, cookies):
        with self.lock:
            return Answer(200 if self._user(cookies) else 401, {"posts": []}, ms=1.0)

    def public(self, cookies):
        return Answer(200, {"posts": []}, ms=1.0)

    def user_posts(self, cookies, name, cursor=None):
        with self.lock:
            if name not in self.users:
                return Answer(404, ms=1.0)
            mine = sorted((p for p in self.posts if p[1] == name), key=lambda p: -int(p[0]))
            start = int(cursor or 0)
            page = mine[start:start + 2]  # tiny pages: verification must follow the cursor
            more = start + 2 < len(mine)
            return Answer(200, {"posts": [{"id": p[0], "body": p[2]} for p in page],
                                "next_cursor": str(start + 2) if more else None}, ms=1.0)


def load(app, tmp_path=None, **options):
    options = {"url": "http://fake", "users": 2, "concurrency": 2, "duration": 0.4,
               "verify_timeout": 0.3, "mix": {"post": 1}, "seed": 1, "rate": 300, **options}
    out = io.StringIO()
    summary = run.LoadRun(run.Options(**options), api=app, out=out).run()
    return summary, [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_clean_run_prints_ticks_and_a_clean_summary():
    app = FakeApp()
    summary, lines = load(app, duration=1.2, mix={"timeline": 1, "public": 1, "post": 2,
                                                  "follow": 1}, rate=200)
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "verifying"
    ticks = [line for line in lines if line["event"] == "tick"]
    assert len(ticks) >= 2
    assert set(ticks[0]) == {"event", "t", "requests", "rps", "p50_ms", "p95_ms", "p99_ms",
                             "errors", "served", "sessions_lost", "fresh_sessions_refused",
                             "longest_write_ms", "writes_acked",
                             "writes_failed", "writes_unknown", "waiting"}
    assert summary["ok"] and summary["stopped_by"] == "duration"
    assert summary["writes_acked"] == len(app.posts) > 0
    assert summary["lost"] == summary["duplicated"] == 0
    assert summary["requests"] == sum(t["requests"] for t in ticks)
    assert summary["rps"] <= 210  # paced


def test_lost_sessions_are_counted_once_each_and_logged_in_again():
    app = FakeApp()

    def forget_all_once(app, count):
        if count == 10:
            app.sessions.clear()

    app.on_post = forget_all_once
    summary, _ = load(app, users=2, concurrency=4)  # two workers share each user's session
    assert summary["sessions_lost"] == 2 and summary["logins"] == 2
    assert summary["errors"]["session_lost"] >= 2
    assert summary["fresh_sessions_refused"] == 0  # both had been honoured before
    assert summary["ok"] and summary["writes_acked"] > 10


def test_a_session_refused_before_any_request_with_it_was_honoured_is_counted_apart():
    app = FakeApp()

    def forget_all_once(app, count):
        if count == 10:  # the session in use goes, and the next one issued is not kept
            app.sessions.clear()
            app.sessions_not_kept = 1

    app.on_post = forget_all_once
    summary, _ = load(app, users=1, concurrency=1)
    # The first loss ends a session that had been honoured; the second ends the one issued by
    # the log-in after it, before anything was answered with it.
    assert summary["sessions_lost"] == 2 and summary["fresh_sessions_refused"] == 1


def test_writes_without_an_answer_are_unknown_and_refused_ones_failed():
    app = FakeApp()
    app.on_post = lambda app, count: {3: "lose-answer", 5: "refuse"}.get(count)
    summary, lines = load(app)
    assert (summary["writes_unknown"], summary["unknown_present"]) == (1, 1)
    assert (summary["writes_failed"], summary["failed_present"]) == (1, 0)
    assert summary["errors"] == {"timeout": 1, "write_failed": 1}
    assert summary["ok"] and summary["lost"] == 0
    # the app's 5xx gets a line of its own, with what the app said; the timeout does not
    [error] = [line for line in lines if line["event"] == "error"]
    assert (error["kind"], error["action"], error["status"], error["said"]) == (
        "write_failed", "post", 503, "retry")


def test_a_stored_post_that_disappears_is_lost():
    app = FakeApp()
    loader = run.LoadRun(run.Options(url="http://fake", users=1, concurrency=1, duration=0.3,
                                     verify_timeout=0.2, mix={"post": 1}, rate=100),
                         api=app, out=io.StringIO())
    assert loader.run()["ok"]
    del app.posts[0]  # a row vanishes behind the app's back; the same ledger, verified again
    verdict, reads = loader.verify()
    assert verdict.lost == 1 and not verdict.ok and reads >= 2  # re-read until the deadline


def test_a_post_stored_twice_is_duplicated():
    app = FakeApp()
    original = app.post

    def post_twice(cookies, body):
        answer = original(cookies, body)
        with app.lock:
            if len(app.posts) == 4:
                app.posts.append([str(next(app.ids)), *app.posts[-1][1:]])
        return answer

    app.post = post_twice
    summary, _ = load(app)
    assert summary["duplicated"] == 1 and not summary["ok"]


def test_the_stop_file_stops_the_load(tmp_path):
    stop = tmp_path / "stop"
    app = FakeApp()
    app.on_post = lambda app, count: stop.touch() if count == 20 else None
    summary, _ = load(app, duration=0, stop_file=str(stop))
    assert summary["stopped_by"] == "stop-file" and summary["ok"]


def test_an_app_that_never_answers_still_ends_with_a_summary():
    class Down(FakeApp):
        def signup(self, name, password):
            return Answer(None, ms=0.1, failure=client.NOT_SENT)

    summary, _ = load(Down(), duration=0.3)
    assert summary["writes_acked"] == 0 and summary["ok"]  # nothing acknowledged, nothing lost
    assert summary["errors"]["connection"] >= 1


def test_the_users_are_fresh_per_run():
    app = FakeApp()
    first, _ = load(app, duration=0.2)
    second, _ = load(app, duration=0.2)
    assert first["run"] != second["run"] and len(app.users) == 4
