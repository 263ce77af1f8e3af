"""What killing a pod did to users, judged from the load's one-second ticks (`chirp load`'s
`served` counts per path: reads, writes, sessions; docs/load.md), and whether a component is a
single point of failure by measurement. Pure: the CLI (chaos_run.py) feeds it ticks.

A second *fails* for a path when more than FAILING_SHARE of that path's requests failed, when
requests of it had been waiting 2 s or more as it ended, or when no request completed in it at
all.

A component is measured to be a *single point of failure* when users cannot do without the pod:
`spof-check` kills it outright and holds its replacement back for HOLD_SECONDS (a ResourceQuota
of zero pods in the namespace, as if no node had room for it). A redundant component's kill costs
what was in flight at that pod, and every path works again for QUIET_SECONDS before the hold
ends; a SPOF's paths are still failing then. Without a hold (`chaos kill`, which shows how long a
real recovery takes) a replacement may be ready within a second or two, as soon as a redundant
pod's in-flight failures end, so the verdict falls back to timing: an outage (starting within
START_SLACK) that lasted until the replacement was ready (within REPLACEMENT_SLACK).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .specs.common import pod_security, restricted

PATHS = ("read", "write", "session")  # chirp.load.stats.PATHS
FAILING_SHARE = 0.05
START_SLACK = 3.0  # seconds: an outage starting this soon after the kill is the kill's doing
GAP_SECONDS = 1.0  # failing runs this close together are one outage
REPLACEMENT_SLACK = 1.0  # seconds: failures that end this close to the replacement waited for it
QUIET_SECONDS = 5  # every path working this long after the kill (and the last failure): recovered
BASELINE_SECONDS = 3  # ticks with traffic before a kill, so "before" is measured too
# Long enough for a redundant component's in-flight failures to end and QUIET_SECONDS to pass
# after them: until the Service drops the killed pod's endpoint, a new connection to it may hang
# for the load's request timeout (10 s; measured on kind: an edge pod killed outright, requests
# waited until 12 s after the kill), and a pinned client moves to another pod.
HOLD_SECONDS = 20
HOLD_QUOTA = "scalestage-spof-hold"  # the ResourceQuota that holds replacements back

# Verdicts of a spof-check row (declared in status.spofs?, measured?)
CONFIRMED, REDUNDANT = "single point of failure", "no single point of failure"
UNDECLARED, SURVIVED = "undeclared single point of failure", "declared, but survived the kill"


def failing_paths(tick: Mapping) -> list[str]:
    """The paths that failed in this second: more than FAILING_SHARE of their requests failed,
    or requests of theirs had been kept waiting 2 s or more when it ended (`waiting`: a write
    held while a primary restarts is not an error, but users wait); every path when no request
    at all completed in it."""
    if not tick.get("requests"):
        return list(PATHS)
    out = []
    waiting = tick.get("waiting") or {}
    for path in PATHS:
        counts = (tick.get("served") or {}).get(path) or {}
        ok, failed = counts.get("ok", 0), counts.get("failed", 0)
        if (failed and failed > FAILING_SHARE * (ok + failed)) or waiting.get(path, 0) > 0:
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


def recovered(ticks: Sequence[Mapping], since: float) -> bool:
    """Every path has worked for QUIET_SECONDS since the last failing second and since `since`
    (the kill, or the moment the killed pod's replacement was ready: its switch costs too, e.g.
    the sessions a process kept): the kill is over, as far as users can tell."""
    seen = after(ticks, since)
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
    replaced_after: float | None = None  # seconds from the kill until its pods were back
    caused: tuple[float, float] | None = None  # the kill's outage, seconds after the kill
    held_for: float | None = None  # seconds the replacement was held back (None: not held)
    survived_hold: bool | None = None  # every path worked again before the hold ended

    @property
    def spof(self) -> bool:
        """Measured: one pod gone stopped a path users need until that pod was replaced."""
        if self.survived_hold is not None:
            return not self.survived_hold
        if not self.recovered or self.replaced_after is None:
            return True
        if self.caused is None:
            return False
        return self.caused[1] >= self.replaced_after - REPLACEMENT_SLACK

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
            killed_at: float, back_at: float | None = None,
            released_at: float | None = None) -> KillReport:
    """The kill's report from the load's ticks (those before the kill are the baseline);
    `back_at`: when the component had its pods again (None: not yet); `released_at`: when a
    hold on its replacement ended (None: no hold). A hold counts only if the replacement was
    not back before it ended (else the quota did not hold it, and timing decides)."""
    held = released_at is not None and (back_at is None or back_at >= released_at)
    before, _ = share_ok(t for t in ticks if t.get("t", 0) <= killed_at)
    window = after(ticks, killed_at)
    during, requests = share_ok(window)
    runs = outages(window)
    lost = (window[-1].get("sessions_lost", 0) - _sessions_before(ticks, killed_at)
            if window else 0)
    return KillReport(
        component=component, pod=pod, forced=forced, killed_at=killed_at,
        before=before, during=during, requests=requests, sessions_lost=lost,
        outage_seconds=round(max((end - start for start, end in runs), default=0.0), 1),
        failing_seconds=sum(1 for tick in window if failing_paths(tick)),
        recovered=back_at is not None and recovered(ticks, max(killed_at, back_at)),
        recovered_after=round(runs[-1][1] - killed_at, 1) if runs else 0.0,
        replaced_after=None if back_at is None else round(back_at - killed_at, 1),
        caused=caused_outage(runs, killed_at),
        held_for=round(released_at - killed_at, 1) if held else None,
        survived_hold=(recovered([t for t in ticks if t.get("t", 0) <= released_at], killed_at)
                       if held else None),
    )


def hold_probe(namespace: str) -> dict:
    """A pod that passes the namespace's Pod Security, created as a dry run until the quota
    refuses it: proof the hold is in force (admission reads quotas from a cache, and a quota
    created a moment ago may not be there yet: a replacement then starts as if there were none)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "scalestage-hold-probe", "namespace": namespace},
            "spec": {"securityContext": pod_security(10001),
                     "containers": [restricted({"name": "probe", "image": "hold-probe"})]}}


def hold_quota(namespace: str) -> dict:
    """The ResourceQuota that holds a killed pod's replacement back: no new pod in the namespace
    (those running are not affected; the workload's controller retries once it is gone)."""
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": HOLD_QUOTA, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "scalestage-cli"}},
            "spec": {"hard": {"pods": "0"}}}


def replacing_controller(pod_owners: Sequence[Mapping]) -> tuple[str, str] | None:
    """(kind, name) of the controller that replaces a pod (its ReplicaSet or StatefulSet), from
    the pod's ownerReferences as dicts; None for a pod nothing replaces."""
    for owner in pod_owners:
        if owner.get("controller") and owner.get("kind") in ("ReplicaSet", "StatefulSet"):
            return owner["kind"], owner["name"]
    return None


def wake_patch(released_at: str) -> dict:
    """The change that makes a held pod's controller try again at once when the hold ends.
    Each create the quota refused sent the controller into a longer backoff (5 ms doubling: about
    20 s by the end of a 20-s hold), so without it the replacement came 2-27 s after the hold,
    at random; when a real node frees up a Pending pod is scheduled without such a wait. Any
    change to the controller's object queues it now; this one also says when the hold ended."""
    return {"metadata": {"annotations": {"scalestage.dev/spof-hold-released-at": released_at}}}


def caused_outage(runs: Sequence[tuple[float, float]],
                  killed_at: float) -> tuple[float, float] | None:
    """The outage the kill caused, as seconds after it: the first run if it starts within
    START_SLACK, joined with the runs that follow it within GAP_SECONDS."""
    if not runs or runs[0][0] > killed_at + START_SLACK:
        return None
    start, end = runs[0]
    for next_start, next_end in runs[1:]:
        if next_start - end > GAP_SECONDS:
            break
        end = next_end
    return round(max(0.0, start - killed_at), 1), round(end - killed_at, 1)


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
            "replacedAfterSeconds": report.replaced_after,
            "heldForSeconds": report.held_for,
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
