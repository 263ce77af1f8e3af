"""What killing a pod did to users, judged from the load's one-second ticks (`chirp load`'s
`served` counts per path: reads, writes, sessions; docs/load.md), and whether a component is a
single point of failure by measurement. Pure: the CLI (chaos_run.py) feeds it ticks.

A second *fails* for a path when more than FAILING_SHARE of that path's requests failed in it.
An *outage* is a run of failing seconds; a component is measured to be a single point of failure
when killing one of its pods (gracefully: what a rollout or a node drain does) caused an outage of
OUTAGE_SECONDS or more, or the load did not recover within the window. A request or two broken in
flight for a second is not an outage: it is what a forced kill of a redundant pod costs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PATHS = ("read", "write", "session")  # chirp.load.stats.PATHS
FAILING_SHARE = 0.05
OUTAGE_SECONDS = 3
QUIET_SECONDS = 5  # every path working this long after the kill (and the last failure): recovered
BASELINE_SECONDS = 3  # ticks with traffic before a kill, so "before" is measured too

# Verdicts of a spof-check row (declared in status.spofs?, measured?)
CONFIRMED, REDUNDANT = "single point of failure", "no single point of failure"
UNDECLARED, SURVIVED = "undeclared single point of failure", "declared, but survived the kill"


def failing_paths(tick: Mapping) -> list[str]:
    """The paths that failed in this second (more than FAILING_SHARE of their requests)."""
    out = []
    for path in PATHS:
        counts = (tick.get("served") or {}).get(path) or {}
        ok, failed = counts.get("ok", 0), counts.get("failed", 0)
        if failed and failed > FAILING_SHARE * (ok + failed):
            out.append(path)
    return out


def after(ticks: Iterable[Mapping], killed_at: float) -> list[Mapping]:
    """The ticks whose second ended after the kill (a tick's `t` is the end of its second)."""
    return [tick for tick in ticks if tick.get("t", 0) > killed_at]


def outages(ticks: Sequence[Mapping]) -> list[tuple[float, float]]:
    """Runs of failing seconds as (start, end) on the load's clock."""
    runs: list[tuple[float, float]] = []
    start = None
    previous_end = None
    for tick in ticks:
        end = tick.get("t", 0)
        if failing_paths(tick):
            if start is None:
                start = end - 1 if previous_end is None else previous_end
            last_end = end
        elif start is not None:
            runs.append((start, last_end))
            start = None
        previous_end = end
    if start is not None:
        runs.append((start, last_end))
    return runs


def recovered(ticks: Sequence[Mapping], killed_at: float) -> bool:
    """Every path has worked for QUIET_SECONDS since the last failing second (and since the
    kill): the kill is over, as far as users can tell."""
    seen = after(ticks, killed_at)
    quiet = 0
    for tick in reversed(seen):
        if failing_paths(tick):
            break
        quiet += 1
    return quiet >= QUIET_SECONDS


@dataclass(frozen=True)
class KillReport:
    """One kill, as users saw it."""

    component: str
    pod: str
    forced: bool
    killed_at: float  # on the load's clock
    before: dict[str, float | None]  # share of each path's requests that worked, before the kill
    during: dict[str, float | None]  # ... from the kill until recovered (or the window's end)
    requests: dict[str, int]  # each path's requests in that window
    sessions_lost: int  # users logged out by the kill (the load logs them in again)
    outage_seconds: float  # the longest run of failing seconds
    failing_seconds: int  # failing seconds in all
    recovered: bool
    recovered_after: float | None  # seconds from the kill until the last failing second ended

    @property
    def spof(self) -> bool:
        """Measured: one pod gone stopped a path users need."""
        return self.outage_seconds >= OUTAGE_SECONDS or not self.recovered

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spof": self.spof}


def share_ok(ticks: Iterable[Mapping]) -> tuple[dict[str, float | None], dict[str, int]]:
    """Per path: the share of requests that worked (None without requests), and their number."""
    ok = dict.fromkeys(PATHS, 0)
    total = dict.fromkeys(PATHS, 0)
    for tick in ticks:
        for path in PATHS:
            counts = (tick.get("served") or {}).get(path) or {}
            ok[path] += counts.get("ok", 0)
            total[path] += counts.get("ok", 0) + counts.get("failed", 0)
    return {p: (round(ok[p] / total[p], 4) if total[p] else None) for p in PATHS}, total


def measure(ticks: Sequence[Mapping], *, component: str, pod: str, forced: bool,
            killed_at: float) -> KillReport:
    """The kill's report from the load's ticks (those before the kill are the baseline)."""
    before, _ = share_ok(t for t in ticks if t.get("t", 0) <= killed_at)
    window = after(ticks, killed_at)
    during, requests = share_ok(window)
    runs = outages(window)
    lost = (window[-1].get("sessions_lost", 0) - _sessions_before(ticks, killed_at)
            if window else 0)
    return KillReport(
        component=component, pod=pod, forced=forced, killed_at=killed_at,
        before=before, during=during, requests=requests, sessions_lost=lost,
        outage_seconds=max((end - start for start, end in runs), default=0.0),
        failing_seconds=sum(1 for tick in window if failing_paths(tick)),
        recovered=recovered(ticks, killed_at),
        recovered_after=round(runs[-1][1] - killed_at, 1) if runs else 0.0,
    )


def _sessions_before(ticks: Sequence[Mapping], killed_at: float) -> int:
    earlier = [t for t in ticks if t.get("t", 0) <= killed_at]
    return earlier[-1].get("sessions_lost", 0) if earlier else 0


def verdict(declared: bool, measured: bool) -> str:
    if declared and measured:
        return CONFIRMED
    if not declared and not measured:
        return REDUNDANT
    return UNDECLARED if measured else SURVIVED


def agrees(declared: bool, measured: bool) -> bool:
    return declared == measured


def declared_spof(component: str, spofs: Sequence[str]) -> bool:
    """Whether status.spofs names the component (`monolith` stands for all of stage 1)."""
    return component in spofs


def spof_check_status(reports: Sequence[KillReport], spofs: Sequence[str], stage: int,
                      now: str) -> dict[str, Any]:
    """`status.spofCheck`: when, at which stage, and per component what was declared and
    measured."""
    rows = []
    for report in reports:
        declared = declared_spof(report.component, spofs)
        rows.append({
            "component": report.component,
            "pod": report.pod,
            "declared": declared,
            "measured": report.spof,
            "verdict": verdict(declared, report.spof),
            "outageSeconds": report.outage_seconds,
            "recoveredAfterSeconds": report.recovered_after if report.recovered else None,
            "sessionsLost": report.sessions_lost,
            **{f"{path}Ok": report.during[path] for path in PATHS
               if report.during[path] is not None},
        })
    return {
        "checkedAt": now,
        "stage": stage,
        "agrees": all(row["declared"] == row["measured"] for row in rows),
        "components": rows,
    }


def summary_message(check: Mapping) -> str:
    """One line for the Event."""
    wrong = [f"{row['component']} ({row['verdict']})" for row in check["components"]
             if row["declared"] != row["measured"]]
    measured = [row["component"] for row in check["components"] if row["measured"]]
    if wrong:
        return (f"stage {check['stage']}: measurement contradicts status.spofs: "
                f"{', '.join(wrong)}")
    return (f"stage {check['stage']}: status.spofs confirmed by killing each component under "
            f"load; single points of failure: {', '.join(measured) or 'none'}")
