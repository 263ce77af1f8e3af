"""Figures of a run: latency percentiles and error counts per one-second window, and totals for the
whole run (a bounded histogram: a run with no end must not grow without bound). Pure: the caller
passes the times and holds a lock."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

# Error kinds (the `errors` object of every JSON line):
WRITE_FAILED = "write_failed"  # a post or follow answered 5xx (503: the app said retry)
READ_FAILED = "read_failed"  # a timeline or public read answered 5xx
AUTH_FAILED = "auth_failed"  # sign-up or log-in did not succeed (5xx, or 401/409 unexpectedly)
SESSION_LOST = "session_lost"  # 401 on a request sent with a session: the app forgot it
CONNECTION = "connection"  # no connection, or it broke before an answer came
TIMEOUT = "timeout"  # no answer within --timeout
REJECTED = "rejected"  # any other 4xx (429, 400, 404): the load generator's requests are valid
ERROR_KINDS = (WRITE_FAILED, READ_FAILED, AUTH_FAILED, SESSION_LOST, CONNECTION, TIMEOUT,
               REJECTED)
PERCENTILES = (50, 95, 99)
# The paths a user sees work or fail, counted per second (`served`: what a kill did to each).
READ, WRITE, SESSION = "read", "write", "session"
PATHS = (READ, WRITE, SESSION)
WAITING_SECONDS = 2.0  # a request in flight this long keeps its user waiting (a tick counts them)


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class Histogram:
    """Latencies in logarithmic buckets 1 % wide: percentiles within 1 % in bounded memory."""

    FLOOR_MS = 0.01
    GROWTH = 1.01

    def __init__(self):
        self.buckets: Counter[int] = Counter()
        self.count = 0

    def add(self, ms: float) -> None:
        index = int(math.log(max(ms, self.FLOOR_MS) / self.FLOOR_MS, self.GROWTH))
        self.buckets[index] += 1
        self.count += 1

    def percentile(self, p: float) -> float | None:
        if not self.count:
            return None
        rank = max(1, math.ceil(p / 100 * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return self.FLOOR_MS * self.GROWTH ** (index + 1)  # the bucket's upper bound
        raise AssertionError("unreachable: the buckets hold `count` values")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class Stats:
    """Counts requests as they complete; `tick` closes the current one-second window."""

    def __init__(self, start: float):
        self.start = start
        self.window_start = start
        self.window: list[float] = []
        self.window_errors: Counter[str] = Counter()
        self.window_longest_write = 0.0
        self.window_served: Counter[tuple[str, bool]] = Counter()
        self.served: Counter[tuple[str, bool]] = Counter()
        self.total = Histogram()
        self.errors: Counter[str] = Counter()
        self.longest_write_ms = 0.0
        self.sessions_lost = 0
        self.fresh_sessions_refused = 0

    def record(self, ms: float, *, write: bool = False, error: str | None = None,
               served: dict[str, bool] | None = None) -> None:
        """One request done (answered or not) after `ms`; `error` is its kind, if it failed;
        `served`: the paths it tried and whether each worked (client.served)."""
        for path, worked in (served or {}).items():
            self.window_served[path, worked] += 1
            self.served[path, worked] += 1
        self.window.append(ms)
        self.total.add(ms)
        if write:
            self.window_longest_write = max(self.window_longest_write, ms)
            self.longest_write_ms = max(self.longest_write_ms, ms)
        if error:
            self.window_errors[error] += 1
            self.errors[error] += 1

    def session_lost(self) -> None:
        """A user's session was forgotten by the app (counted once per session, however many
        requests of its workers saw the 401)."""
        self.sessions_lost += 1

    def fresh_session_refused(self) -> None:
        """A session refused on the first request sent with it: the app issued it and then did
        not know it (e.g. old and new pods of a rollout keeping sessions apart)."""
        self.fresh_sessions_refused += 1

    def tick(self, now: float) -> dict[str, Any]:
        """The window's figures (then a new window starts): `requests` and `errors` count this
        window, `rps` is per second of it, `longest_write_ms` is this window's longest write."""
        seconds = max(now - self.window_start, 1e-9)
        latencies = sorted(self.window)
        out = {
            "t": round(now - self.start, 1),
            "requests": len(latencies),
            "rps": round(len(latencies) / seconds, 1),
            **{f"p{p}_ms": _ms(percentile(latencies, p)) for p in PERCENTILES},
            "errors": dict(sorted(self.window_errors.items())),
            "served": _served(self.window_served),
            "sessions_lost": self.sessions_lost,
            "fresh_sessions_refused": self.fresh_sessions_refused,
            "longest_write_ms": round(self.window_longest_write, 1),
        }
        self.window_served = Counter()
        self.window_start = now
        self.window = []
        self.window_errors = Counter()
        self.window_longest_write = 0.0
        return out

    def totals(self, now: float) -> dict[str, Any]:
        """The whole run's figures (percentiles within 1 %)."""
        seconds = max(now - self.start, 1e-9)
        return {
            "t": round(now - self.start, 1),
            "requests": self.total.count,
            "rps": round(self.total.count / seconds, 1),
            **{f"p{p}_ms": _ms(self.total.percentile(p)) for p in PERCENTILES},
            "errors": dict(sorted(self.errors.items())),
            "served": _served(self.served),
            "sessions_lost": self.sessions_lost,
            "fresh_sessions_refused": self.fresh_sessions_refused,
            "longest_write_ms": round(self.longest_write_ms, 1),
        }


def _served(counts: Counter[tuple[str, bool]]) -> dict[str, dict[str, int]]:
    return {path: {"ok": counts[path, True], "failed": counts[path, False]} for path in PATHS}


def waiting(in_flight: Iterable[tuple[str, float]], now: float) -> dict[str, int]:
    """Requests in flight for WAITING_SECONDS or more, by path (reads, writes): users kept
    waiting at this moment — a write held while a primary restarts shows here, not as an error."""
    out = {READ: 0, WRITE: 0}
    for path, started in in_flight:
        if now - started >= WAITING_SECONDS:
            out[path] += 1
    return out
