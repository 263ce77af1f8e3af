"""What served this request: database routes and cache outcome, reported in headers and footers.

The current trace lives in a ContextVar, not in Flask's `g`: the data layer (db/, cache.py, reads,
writes, tasks) records into current_trace() without knowing who is asking. The web layer starts a
trace for each request (chirp.app); a Celery task, a command or a test may start one explicitly with
`traced()`. Anywhere else current_trace() is a no-op trace that records nothing.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field


@dataclass
class RequestTrace:
    db_routes: list[str] = field(default_factory=list)
    cache_results: list[str] = field(default_factory=list)  # hit / miss / down
    timeline_source: str | None = None  # how a home timeline was built (X-Chirp-Timeline)

    def used_db(self, label: str) -> None:
        if label not in self.db_routes:
            self.db_routes.append(label)

    def used_cache(self, result: str) -> None:
        self.cache_results.append(result)

    def served_timeline(self, source: str) -> None:
        self.timeline_source = source

    def db_header(self) -> str:
        return ",".join(self.db_routes) or "none"

    def cache_header(self, cache_enabled: bool) -> str:
        return summarize_cache(self.cache_results, cache_enabled)


class NoTrace(RequestTrace):
    """Outside a traced context: accepts everything, keeps nothing (one shared instance)."""

    def used_db(self, label: str) -> None:
        pass

    def used_cache(self, result: str) -> None:
        pass

    def served_timeline(self, source: str) -> None:
        pass


NO_TRACE = NoTrace()
_current: ContextVar[RequestTrace | None] = ContextVar("chirp_trace", default=None)


def summarize_cache(results: list[str], cache_enabled: bool) -> str:
    """One word for the whole request: off (no cache at this stage), down, miss, hit, or none."""
    if not cache_enabled:
        return "off"
    if "down" in results:
        return "down"
    if "miss" in results:
        return "miss"
    if "hit" in results:
        return "hit"
    return "none"


def current_trace() -> RequestTrace:
    """The trace of the request (or task) being served; NO_TRACE when there is none."""
    trace = _current.get()
    return NO_TRACE if trace is None else trace


def start_trace(trace: RequestTrace | None = None) -> Token:
    """Make `trace` (default: a new one) current; pass the token to end_trace()."""
    return _current.set(RequestTrace() if trace is None else trace)


def end_trace(token: Token) -> None:
    _current.reset(token)


@contextmanager
def traced(trace: RequestTrace | None = None) -> Iterator[RequestTrace]:
    """`with traced() as trace:` records what the code inside uses into `trace`."""
    trace = RequestTrace() if trace is None else trace
    token = start_trace(trace)
    try:
        yield trace
    finally:
        end_trace(token)
