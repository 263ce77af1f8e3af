"""Prometheus counters, module-level so several app instances in one process share them."""

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "chirp_http_requests_total", "HTTP requests served", ["endpoint", "method", "status"]
)
HTTP_LATENCY = Histogram("chirp_http_request_seconds", "HTTP request latency", ["endpoint"])
DB_QUERIES = Counter(
    "chirp_db_queries_total", "SQL statements sent, by database route and kind", ["route", "kind"]
)
CACHE_LOOKUPS = Counter("chirp_cache_lookups_total", "Cache lookups by result", ["result"])
REDIS_ROUND_TRIPS = Counter("chirp_redis_round_trips_total",
                            "Requests sent to Redis (a pipeline or a script is one)", ["client"])
FANOUT_DELIVERIES = Counter("chirp_fanout_deliveries_total", "Timeline entries written by fan-out")
WRITES_REFUSED = Counter("chirp_writes_refused_total",
                         "Writes answered 503: read-only, or a data move held them too long")


def db_query_count(route_prefix: str = "", kind: str | None = None) -> float:
    """Sum of chirp_db_queries_total over routes starting with route_prefix (tests, bench)."""
    total = 0.0
    for metric in DB_QUERIES.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            if labels["route"].startswith(route_prefix) and kind in (None, labels["kind"]):
                total += sample.value
    return total
