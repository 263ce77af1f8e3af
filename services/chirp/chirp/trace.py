"""What served this request: database routes and cache outcome, reported in headers and footers."""

from dataclasses import dataclass, field

from flask import g, has_request_context


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

    def db_header(self) -> str:
        return ",".join(self.db_routes) or "none"

    def cache_header(self, cache_enabled: bool) -> str:
        return summarize_cache(self.cache_results, cache_enabled)


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
    if has_request_context():
        if "chirp_trace" not in g:
            g.chirp_trace = RequestTrace()
        return g.chirp_trace
    return RequestTrace()
