"""A lean HTTP load for the bench: one keep-alive http.client connection per client thread, a
session cookie per user, operations drawn beforehand (the same for every stage). requests' own
cost per call is about that of a cache hit on the server: it would blur what is measured."""

import http.client
import json
import random
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .dataset import PASSWORD, Zipf, username


@dataclass(frozen=True)
class Op:
    reader: int  # a timeline read by this user...
    author: int | None  # ...after a post by this one (or none)


def draw_ops(users: int, count: int, threads: int, seed: int, zipf_s: float,
             write_share: float) -> list[list[Op]]:
    """`count` operations split over `threads`, Zipf-drawn readers and authors."""
    plans = []
    for t in range(threads):
        rng = random.Random(seed * 100 + t)
        zipf = Zipf(users, zipf_s, rng)
        plans.append([Op(author=zipf.draw() if rng.random() < write_share else None,
                         reader=zipf.draw()) for _ in range(count // threads)])
    return plans


@dataclass
class PhaseResult:
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)  # timeline reads
    by_source: dict[str, list[float]] = field(default_factory=dict)  # the same, by X-Chirp-Timeline
    cache: dict[str, int] = field(default_factory=dict)  # X-Chirp-Cache values
    errors: list[str] = field(default_factory=list)

    @property
    def reads(self) -> int:
        return len(self.latencies_ms)

    @property
    def sources(self) -> dict[str, int]:
        """Reads per X-Chirp-Timeline value."""
        return {source: len(latencies) for source, latencies in self.by_source.items()}

    def add(self, other: "PhaseResult") -> None:
        self.seconds += other.seconds
        self.latencies_ms += other.latencies_ms
        self.errors += other.errors
        for source, latencies in other.by_source.items():
            self.by_source.setdefault(source, []).extend(latencies)
        for key, value in other.cache.items():
            self.cache[key] = self.cache.get(key, 0) + value


class Client:
    def __init__(self, base: str, threads: int):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.threads = threads
        self.cookies: dict[int, str] = {}

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def _request(self, conn, method, path, cookie=None, body=None):
        """The response (read); a keep-alive connection the server closed is reopened once."""
        try:
            return self._send(conn, method, path, cookie, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            return self._send(conn, method, path, cookie, body)  # connects again

    @staticmethod
    def _send(conn, method, path, cookie, body):
        headers = {"Accept": "application/json"}
        if cookie:
            headers["Cookie"] = cookie
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response

    def _parallel(self, work) -> list:
        results = [None] * self.threads
        errors = []

        def run(t):
            try:
                results[t] = work(t)
            except Exception as error:  # a dead thread must not pass for a finished one
                errors.append(repr(error))

        threads = [threading.Thread(target=run, args=(t,)) for t in range(self.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise RuntimeError(f"client thread failed: {errors[:3]}")
        return results

    def log_in(self, ranks: set[int]) -> None:
        todo = sorted(rank for rank in ranks if rank not in self.cookies)

        def work(t):
            conn = self._connection()
            for rank in todo[t::self.threads]:
                response = self._request(conn, "POST", "/api/login",
                                         body={"username": username(rank), "password": PASSWORD})
                if response.status != 200:
                    raise RuntimeError(f"login of {username(rank)}: {response.status}")
                cookie = response.getheader("Set-Cookie").split(";", 1)[0]
                self.cookies[rank] = cookie
            conn.close()

        self._parallel(work)

    def log_in_for(self, plans: list[list[Op]]) -> None:
        self.log_in({op.reader for plan in plans for op in plan}
                    | {op.author for plan in plans for op in plan if op.author is not None})

    def run(self, plans: list[list[Op]], tag: str, rate: float | None = None) -> PhaseResult:
        """Each thread's operations one after another: closed loop, as fast as the server answers.
        With rate (operations a second in all): open loop, each operation sent when it is due
        (due_offset) and a read's latency counted from then, so a server that falls behind is
        charged for the wait it causes (not only for the requests it answers)."""
        self.log_in_for(plans)
        per_thread = [PhaseResult(0.0) for _ in plans]
        started = time.perf_counter()

        def work(t):
            result, conn = per_thread[t], self._connection()
            for n, op in enumerate(plans[t]):
                due = None
                if rate is not None:
                    due = started + due_offset(n, t, self.threads, rate)
                    time.sleep(max(0.0, due - time.perf_counter()))
                if op.author is not None:
                    response = self._request(conn, "POST", "/api/posts",
                                             cookie=self.cookies[op.author],
                                             body={"body": f"bench {tag}-{t}-{n}"})
                    if response.status != 201:
                        result.errors.append(f"post {response.status}")
                    due = None  # the read follows its post at once
                sent = time.perf_counter()
                response = self._request(conn, "GET", "/api/timeline",
                                         cookie=self.cookies[op.reader])
                since = sent if due is None else min(sent, due)
                latency_ms = (time.perf_counter() - since) * 1000
                result.latencies_ms.append(latency_ms)
                if response.status != 200:
                    result.errors.append(f"timeline {response.status}")
                cached = response.getheader("X-Chirp-Cache", "-")
                result.cache[cached] = result.cache.get(cached, 0) + 1
                source = response.getheader("X-Chirp-Timeline", "-")
                result.by_source.setdefault(source, []).append(latency_ms)
            conn.close()

        self._parallel(work)
        total = PhaseResult(time.perf_counter() - started)
        for result in per_thread:
            total.add(result)
        return total


def due_offset(n: int, thread: int, threads: int, rate: float) -> float:
    """Seconds after the start at which thread's n-th operation is due, `rate` operations a second
    in all: the threads take turns, evenly spaced."""
    return (n * threads + thread) / rate
