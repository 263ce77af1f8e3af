"""The capacity report of `scalestage bench`: the same load at each stage, and what each stage
buys. Pure: figures in (the load's summary, the app's /metrics before and after), a Markdown
table and a chart out. bench_run.py does the walking and the measuring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUERIES = "chirp_db_queries_total"
CACHE = "chirp_cache_lookups_total"


def counters(text: str, names: Iterable[str] = (QUERIES, CACHE)) -> dict[tuple, float]:
    """The samples of the named counters in one /metrics page: {(name, labels...): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = set(names)
    out: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                key = (sample.name, *sorted(sample.labels.items()))
                out[key] = out.get(key, 0.0) + sample.value
    return out


def delta(before: Mapping[tuple, float], after: Mapping[tuple, float]) -> dict[tuple, float]:
    """What the counters grew by (a pod restarted in between counts from zero)."""
    out = {}
    for key, value in after.items():
        grown = value - before.get(key, 0.0)
        out[key] = value if grown < 0 else grown
    return out


def role_of(route: str) -> str:
    """The app's route labels (chirp.shards.route_label: `primary`, `replica-1`, `shard-0`,
    `shard-0-replica-1`) → primary / replica (the shard is summed)."""
    return "replica" if "replica" in route else "primary"


@dataclass(frozen=True)
class StageFigures:
    stage: int
    name: str
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    requests: int
    errors: int
    queries: dict[str, float] = field(default_factory=dict)  # by role: primary / replica
    cache_hits: float = 0.0
    cache_lookups: float = 0.0

    @property
    def cache_hit_ratio(self) -> float | None:
        return self.cache_hits / self.cache_lookups if self.cache_lookups else None

    def queries_per_request(self, role: str) -> float:
        return self.queries.get(role, 0.0) / self.requests if self.requests else 0.0


def figures(stage: int, name: str, summary: Mapping[str, Any],
            grown: Mapping[tuple, float]) -> StageFigures:
    """One stage's row from the load's summary and the counters' growth over the run."""
    queries: dict[str, float] = {}
    hits = lookups = 0.0
    for key, value in grown.items():
        labels = dict(key[1:])
        if key[0] == QUERIES:
            role = role_of(labels.get("route", ""))
            queries[role] = queries.get(role, 0.0) + value
        elif key[0] == CACHE:
            lookups += value
            hits += value if labels.get("result") == "hit" else 0.0
    return StageFigures(
        stage=stage, name=name, rps=summary.get("rps", 0.0), p50_ms=summary.get("p50_ms"),
        p95_ms=summary.get("p95_ms"), p99_ms=summary.get("p99_ms"),
        requests=summary.get("requests", 0),
        errors=sum((summary.get("errors") or {}).values()),
        queries=queries, cache_hits=hits, cache_lookups=lookups)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(rows: Sequence[StageFigures], load: str) -> str:
    """The report's table, with what the load was."""
    lines = [
        f"Load: {load}.",
        "",
        "| stage | req/s | p50 ms | p95 ms | p99 ms | errors | primary queries/req "
        "| replica queries/req | cache hit ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row.cache_hit_ratio
        lines.append(
            f"| {row.stage} {row.name} | {row.rps:.1f} | {_ms(row.p50_ms)} | {_ms(row.p95_ms)} | "
            f"{_ms(row.p99_ms)} | {row.errors} | {row.queries_per_request('primary'):.2f} | "
            f"{row.queries_per_request('replica'):.2f} | "
            f"{'-' if ratio is None else f'{ratio:.0%}'} |")
    return "\n".join(lines) + "\n"


def chart(rows: Sequence[StageFigures], path: Path, title: str) -> Path:
    """Throughput and latency per stage (left), database queries per request by role (right)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display
    import matplotlib.pyplot as plt

    labels = [f"{row.stage}\n{row.name}" for row in rows]
    x = range(len(rows))
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.bar(x, [row.rps for row in rows], color="#4c78a8", label="req/s")
    left.set_ylabel("requests per second")
    left.set_xticks(list(x), labels)
    latency = left.twinx()
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s--"), ("p99_ms", "^:")):
        latency.plot(list(x), [getattr(row, key) or 0 for row in rows], style, color="#e45756",
                     label=key.replace("_ms", ""))
    latency.set_ylabel("latency ms")
    latency.legend(loc="upper left")
    left.set_title("throughput (bars) and latency (lines)")
    width = 0.4
    right.bar([i - width / 2 for i in x], [row.queries_per_request("primary") for row in rows],
              width, label="primary", color="#f58518")
    right.bar([i + width / 2 for i in x], [row.queries_per_request("replica") for row in rows],
              width, label="replicas", color="#54a24b")
    right.set_xticks(list(x), labels)
    right.set_ylabel("database queries per request")
    right.set_title("where the reads go")
    right.legend()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
