"""The load loop: sign the users up, drive them from worker threads, print one JSON line per
second, stop (duration, stop file, SIGTERM/SIGINT), read every user's posts back and print the
verdict as the last line. The JSON lines are the contract (docs/load.md)."""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

from chirp.load import client, ledger, plan, stats

TICK_SECONDS = 1.0
POLL_SECONDS = 0.1  # how often the stop file and the duration are checked
ERROR_PAUSE_SECONDS = 0.1  # a worker's pause after a failure (no busy loop against a dead app)
RETRY_SECONDS = 0.5  # between sign-up / log-in attempts, and re-reads while verifying
VERIFY_COOKIE = "chirp_load"
# Answers worth an `error` line of their own (the app failed, not the network or a session).
SHOWN_ERRORS = frozenset({stats.WRITE_FAILED, stats.READ_FAILED, stats.AUTH_FAILED})
# `error` lines per minute of load: a long run's late failures are explained too (a journey's
# pod kills used up a total of 50 long before its last data moves).
MAX_ERRORS_SHOWN_PER_MINUTE = 10


@dataclass
class Options:
    url: str
    users: int = 4
    concurrency: int = 4
    rate: float | None = None  # requests per second in total; None: as fast as the workers go
    duration: float = 60.0  # seconds of load; 0: until stopped
    stop_file: str | None = None
    timeout: float = 10.0  # per request
    mix: dict[str, int] = field(default_factory=lambda: dict(plan.DEFAULT_MIX))
    verify_timeout: float = 30.0  # how long reads may keep failing or lagging while verifying
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    seed: int | None = None


class User:
    """One account the load drives; its session (cookies) is shared by the workers driving it."""

    def __init__(self, index: int, name: str, password: str):
        self.index = index
        self.name = name
        self.password = password
        self.lock = threading.Lock()
        self.cookies: dict[str, str] | None = None  # None: no session (yet, or lost)
        self.generation = 0  # bumped at each log-in: a 401 only ends the session it was sent with
        self.first_sent = 0  # the last generation a request was sent with
        self.signed_up = False
        self.seq = itertools.count(1)

    def session(self) -> tuple[dict[str, str] | None, int]:
        with self.lock:
            return (None if self.cookies is None else dict(self.cookies)), self.generation

    def update(self, generation: int, cookies: dict[str, str | None]) -> None:
        with self.lock:
            if cookies and self.cookies is not None and generation == self.generation:
                self.cookies = client.merge_cookies(self.cookies, cookies)

    def first_use(self, generation: int) -> bool:
        """True for the first request sent with this session (none was sent with it before)."""
        with self.lock:
            first = self.first_sent < generation
            self.first_sent = max(self.first_sent, generation)
            return first

    def forget(self, generation: int) -> bool:
        """The app lost this session: True for the first worker to notice."""
        with self.lock:
            if self.cookies is None or generation != self.generation:
                return False
            self.cookies = None
            return True


class LoadRun:
    def __init__(self, options: Options, api: client.Api | None = None,
                 out: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.options = options
        self.api = api or client.Api(client.Http(options.url, options.timeout, clock))
        self.out = out or sys.stdout
        self.clock = clock
        self.mix = plan.Mix(options.mix)
        password = secrets.token_urlsafe(12)
        self.users = [User(i, plan.username(options.run_id, i), password)
                      for i in range(options.users)]
        self.start = clock()
        self.stats = stats.Stats(self.start)
        self.ledger = ledger.Ledger()
        self.pacer = plan.Pacer(options.rate, self.start) if options.rate else None
        self.lock = threading.Lock()  # stats, ledger, pacer
        self.out_lock = threading.Lock()
        self.stop = threading.Event()
        self.stopped_by: str | None = None
        self.load_deadline: float | None = None
        self.logins = 0
        self.errors_shown: dict[int, int] = {}  # minute of the run -> error lines so far
        self.in_flight: dict[object, tuple[str, float]] = {}  # token -> (path, started)

    # --- output and stopping ------------------------------------------------------------------
    def emit(self, line: dict[str, Any]) -> None:
        with self.out_lock:
            self.out.write(json.dumps(line) + "\n")
            self.out.flush()

    def request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stopped_by = reason
            self.stop.set()

    def check_stop(self) -> None:
        if self.options.stop_file and os.path.exists(self.options.stop_file):
            self.request_stop("stop-file")
        elif self.load_deadline is not None and self.clock() >= self.load_deadline:
            self.request_stop("duration")

    def tick_line(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            return {"event": "tick", **self.stats.tick(now), **self.ledger.counts(),
                    "waiting": stats.waiting(self.in_flight.values(), now)}

    def ticker(self, done: threading.Event) -> None:
        """A tick line each second until `done`, then one for the last (partial) second."""
        next_tick = self.start + TICK_SECONDS
        while not done.is_set():
            self.check_stop()
            now = self.clock()
            if now >= next_tick:
                self.emit(self.tick_line())
                next_tick = self.start + TICK_SECONDS * (int((now - self.start) / TICK_SECONDS)
                                                         + 1)
            done.wait(min(POLL_SECONDS, max(0.0, next_tick - self.clock())))
        self.emit(self.tick_line())

    # --- one request --------------------------------------------------------------------------
    def record(self, action: str, answer: client.Answer, *, with_session: bool) -> str | None:
        kind = client.classify(action, answer, with_session=with_session)
        with self.lock:
            self.stats.record(answer.ms, write=action in plan.WRITES, error=kind,
                              served=client.served(action, kind, with_session=with_session))
        return kind

    def log_in(self, user: User) -> bool:
        """Give the user a session: sign up the first time, log in after a session was lost (the
        only log-ins the load makes: the app rate-limits failed ones)."""
        with user.lock:
            if user.cookies is not None:
                return True
            action = client.LOGIN if user.signed_up else client.SIGNUP
            answer = (self.api.login if user.signed_up else self.api.signup)(user.name,
                                                                             user.password)
            self.record(action, answer, with_session=False)
            if answer.status == 409:  # an earlier sign-up was stored but its answer was lost
                user.signed_up = True
                action, answer = client.LOGIN, self.api.login(user.name, user.password)
                self.record(action, answer, with_session=False)
            if not answer.ok:
                return False
            if action == client.LOGIN:
                self.logins += 1
            user.signed_up = True
            user.cookies = client.merge_cookies({}, answer.cookies)
            user.generation += 1
            return True

    def send(self, action: str, user: User, cookies: dict[str, str],
             rng: random.Random) -> tuple[str, client.Answer, str | None]:
        """(action, answer, the post's nonce if it was a post)."""
        if action == plan.FOLLOW:
            other = plan.follow_target(user.index, len(self.users), rng.random())
            if other is not None:
                return action, self.api.follow(cookies, self.users[other].name), None
            action = plan.PUBLIC  # nobody else to follow
        if action == plan.POST:
            nonce = ledger.nonce(self.options.run_id, user.index, next(user.seq))
            return action, self.api.post(cookies, ledger.post_body(nonce)), nonce
        if action == plan.TIMELINE:
            return action, self.api.timeline(cookies), None
        return plan.PUBLIC, self.api.public(cookies), None

    def step(self, user: User, rng: random.Random) -> None:
        if user.cookies is None and not self.log_in(user):
            self.stop.wait(RETRY_SECONDS)
            return
        cookies, generation = user.session()
        if cookies is None:  # another worker has just found it lost
            return
        picked = self.mix.pick(rng.random())
        first_use = user.first_use(generation)
        token = object()
        with self.lock:
            self.in_flight[token] = (stats.WRITE if picked in plan.WRITES else stats.READ,
                                     self.clock())
        try:
            action, answer, nonce = self.send(picked, user, cookies, rng)
        finally:
            with self.lock:
                del self.in_flight[token]
        kind = client.classify(action, answer, with_session=True)
        lost = kind == stats.SESSION_LOST and user.forget(generation)
        if kind != stats.SESSION_LOST:
            user.update(generation, answer.cookies)
        with self.lock:
            self.stats.record(answer.ms, write=action in plan.WRITES, error=kind,
                              served=client.served(action, kind, with_session=True))
            if lost:
                self.stats.session_lost()
                if first_use:  # refused on its very first use: the app forgot a session it
                    self.stats.fresh_session_refused()  # had just issued
            if nonce is not None:
                outcome = client.write_outcome(answer)
                if outcome == client.ACKED:
                    self.ledger.ack(nonce, user.index, answer.body["post"]["id"])
                elif outcome == client.FAILED:
                    self.ledger.fail(nonce, user.index)
                else:
                    self.ledger.unknown_outcome(nonce, user.index)
        if kind in SHOWN_ERRORS:
            self.show_error(action, answer, kind)
        if kind is not None and kind != stats.SESSION_LOST:
            self.stop.wait(ERROR_PAUSE_SECONDS)

    def show_error(self, action: str, answer: client.Answer, kind: str) -> None:
        """An `error` line for an answer the app should not have given (5xx): what it said, so a
        failure can be explained after the pods that gave it are gone. The first few of each
        minute only."""
        t = self.clock() - self.start
        with self.lock:
            minute = int(t // 60)
            self.errors_shown[minute] = self.errors_shown.get(minute, 0) + 1
            if self.errors_shown[minute] > MAX_ERRORS_SHOWN_PER_MINUTE:
                return
        said = answer.body.get("error") if isinstance(answer.body, dict) else None
        self.emit({"event": "error", "t": round(t, 1), "kind": kind,
                   "action": action, "status": answer.status, "ms": round(answer.ms, 1),
                   "said": str(said)[:300] if said is not None else None})

    def worker(self, index: int) -> None:
        seed = self.options.seed
        rng = random.Random(None if seed is None else seed * 1000 + index)
        mine = plan.users_of_worker(index, self.options.concurrency, len(self.users))
        for turn in itertools.count():
            if self.stop.is_set():
                return
            if self.pacer is not None:
                with self.lock:
                    due = self.pacer.slot(self.clock())
                if self.stop.wait(max(0.0, due - self.clock())):
                    return
            try:
                self.step(self.users[mine[turn % len(mine)]], rng)
            except Exception:  # a bug here must not silently take a worker's share of the load
                traceback.print_exc(file=sys.stderr)
                self.stop.wait(ERROR_PAUSE_SECONDS)

    def sign_up(self, user: User) -> None:
        while not self.stop.is_set() and not self.log_in(user):
            self.stop.wait(RETRY_SECONDS)

    # --- verification -------------------------------------------------------------------------
    def read_back(self, user: User, deadline: float) -> list[tuple[str, str]] | None:
        """Every post of the user, paging through the API (with the user's session: it reads
        its own writes, from the primary for a while); None if reads kept failing until the
        deadline. A user the app no longer knows (404 past the deadline: not a lagging replica)
        has no posts: all lost."""
        pairs: list[tuple[str, str]] = []
        cursor = None
        while True:
            cookies, _ = user.session()
            # Always a cookie: the stage-5 edge serves cookie-less GETs from its cache (5 s).
            cookies = {VERIFY_COOKIE: self.options.run_id, **(cookies or {})}
            answer = self.api.user_posts(cookies, user.name, cursor)
            if answer.ok and isinstance(answer.body, dict):
                pairs += [(p["body"], p["id"]) for p in answer.body.get("posts", [])]
                cursor = answer.body.get("next_cursor")
                if not cursor:
                    return pairs
                continue
            if self.clock() >= deadline:
                return pairs if answer.status == 404 else None
            time.sleep(RETRY_SECONDS)

    def verify(self) -> tuple[ledger.Verdict, int]:
        """Read everything back; while writes look lost (a replica or cache behind) or reads fail,
        read again until verify_timeout."""
        deadline = self.clock() + self.options.verify_timeout
        for attempt in itertools.count(1):
            pairs: list[tuple[str, str]] = []
            unread = []
            for user in filter(lambda u: u.signed_up, self.users):  # others wrote nothing
                got = self.read_back(user, deadline)
                if got is None:
                    unread.append(user.index)
                else:
                    pairs += got
            verdict = ledger.verify(self.ledger, ledger.seen_from(pairs), unread)
            if (verdict.lost == 0 and not unread) or self.clock() >= deadline:
                return verdict, attempt
            time.sleep(RETRY_SECONDS)
        raise AssertionError("unreachable")

    # --- the whole run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        o = self.options
        self.emit({"event": "start", "run": o.run_id, "url": o.url, "users": o.users,
                   "concurrency": o.concurrency, "rate": o.rate, "duration": o.duration,
                   "mix": o.mix})
        if o.duration:  # from the start: sign-ups that never succeed (app down) end too
            self.load_deadline = self.start + o.duration
        done = threading.Event()
        ticker = threading.Thread(target=self.ticker, args=(done,), name="ticker", daemon=True)
        ticker.start()
        with ThreadPoolExecutor(min(o.concurrency, len(self.users))) as pool:
            list(pool.map(self.sign_up, self.users))
        load_started = self.clock()
        workers = [threading.Thread(target=self.worker, args=(i,), name=f"load-{i}", daemon=True)
                   for i in range(o.concurrency)]
        for thread in workers:
            thread.start()
        for thread in workers:
            while thread.is_alive():  # joined in slices: signals are handled meanwhile
                thread.join(0.2)
        done.set()
        ticker.join()
        with self.lock:
            self.emit({"event": "verifying", "t": round(self.clock() - self.start, 1),
                       **self.ledger.counts()})
        verify_started = self.clock()
        verdict, attempts = self.verify()
        now = self.clock()
        return {
            "event": "summary",
            "run": o.run_id,
            "users": len(self.users),
            "load_s": round(verify_started - load_started, 1),
            **self.stats.totals(verify_started),  # the load's figures; t: when it stopped
            **self.ledger.counts(),
            **verdict.as_dict(),
            "logins": self.logins,
            "stopped_by": self.stopped_by,
            "verified": verdict.unverified == 0,
            "verify_s": round(now - verify_started, 1),
            "verify_reads": attempts,
            "ok": verdict.ok,
        }


def main(options: Options) -> int:
    """Run to the end; exit 0 when every acknowledged write was read back exactly once under its
    id, 1 otherwise (lost, duplicated, renumbered, or posts that could not be read back)."""
    load = LoadRun(options)
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda *_: load.request_stop("signal"))
    try:
        summary = load.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    load.emit(summary)
    return 0 if summary["ok"] else 1
