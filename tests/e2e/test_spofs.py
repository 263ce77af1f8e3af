"""Kill real pods under load: at every stage `scalestage spof-check` (the CLI, run as a user runs
it) deletes one pod of each component while a load Job writes and reads through the front door,
and its measurements must agree with the single points of failure the status declares. At
stages 3 and 4 `scalestage chaos kill` shows the sessions lesson: at 3 the pod a client is pinned
to holds its session; at 4 any web pod can go and nobody is logged out.

One ScaleStage walks up 1→5 (shared by every check here: each stage is measured where the walk
reaches it). Every load the commands start verifies its writes at the end: none lost or doubled.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid

import pytest

from scalestage import chaos
from scalestage.names import COMPONENT, GROUP, VERSION
from scalestage.names import INSTANCE as INSTANCE_LABEL
from scalestage.specs import load
from tests.e2e.kindcluster import TRANSIENT, Cluster
from tests.e2e.walking import (
    INSTANCE,
    RESTRICTED,
    STEP_TIMEOUT,
    load_lines,
    load_pod_name,
    pods,
    reached,
    scalestage,
    set_position,
)
from tests.polling import wait_until

pytestmark = pytest.mark.slow

CLI_TIMEOUT = 900
# Run in the load pod: which web pod answers this client (ClientIP affinity pins it at stage 3).
WHO_ANSWERS = r"""
import sys, urllib.request
response = urllib.request.urlopen(sys.argv[1] + "/api/public", timeout=10)
print(response.headers.get("X-Chirp-Pod", ""))
"""


@pytest.fixture(scope="module")
def namespace(kind_cluster: Cluster, operator: str):
    name = kind_cluster.create_namespace(f"e2e-spof-{uuid.uuid4().hex[:6]}", labels=RESTRICTED)
    kind_cluster.apply({"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScaleStage",
                        "metadata": {"name": INSTANCE}, "spec": {"stage": 1}}, namespace=name)
    yield name
    kind_cluster.delete_namespace(name)


def scalestage_cli(cluster: Cluster, namespace: str, *args: str) -> subprocess.CompletedProcess:
    """The `scalestage` command, as a user runs it against the kind cluster."""
    command = [sys.executable, "-m", "scalestage.cli", "--context", cluster.context,
               "--name", INSTANCE, "-n", namespace, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                          env={**os.environ, "COLUMNS": "160"})


def json_result(run: subprocess.CompletedProcess) -> dict:
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON from the CLI (exit {run.returncode}):\n{run.stdout}\n{run.stderr}"
    return json.loads(lines[-1])


def assert_writes_kept(result: dict) -> None:
    summary = result["load"]
    assert summary is not None and summary["writes_acked"] > 0, summary
    assert summary["lost"] == 0 and summary["duplicated"] == 0, summary
    assert summary["failed_present"] == 0, summary


def walk_to(cluster: Cluster, namespace: str, stage: int) -> None:
    position = (stage, 2 if stage == 5 else 0)
    set_position(cluster, namespace, position)
    wait_until(lambda: reached(cluster, namespace, position), timeout=STEP_TIMEOUT, interval=1,
               what=f"stage {stage} reached", tolerate=TRANSIENT)


@pytest.mark.parametrize("stage", [1, 2, 3, 4, 5])
def test_spof_check_agrees_with_the_declared_spofs(stage, kind_cluster: Cluster,
                                                   namespace: str, say):
    walk_to(kind_cluster, namespace, stage)
    run = scalestage_cli(kind_cluster, namespace, "spof-check", "--json")
    check = json_result(run)
    rows = {row["component"]: row for row in check["components"]}
    say(f"stage {stage} spof-check: " + "; ".join(
        f"{name} declared={row['declared']} measured={row['measured']} "
        f"outage={row['outageSeconds']}s recovered={row['recoveredAfterSeconds']}s "
        f"replaced={row['replacedAfterSeconds']}s held={row['heldForSeconds']}s "
        f"sessions_lost={row['sessionsLost']} "
        f"reads={row.get('readOk')} writes={row.get('writeOk')} sessions={row.get('sessionOk')}"
        for name, row in rows.items()))
    assert check["agrees"], (check, run.stderr[-3000:])
    assert run.returncode == 0, run.stderr[-3000:]
    assert_writes_kept(check)
    status = scalestage(kind_cluster, namespace)["status"]
    assert status["spofCheck"]["checkedAt"] == check["checkedAt"]  # written back
    assert set(rows) == {c["name"] for c in status["components"]}
    # every verdict came from users measured without the pod: its replacement really was held
    assert all(row["heldForSeconds"] for row in rows.values()), rows
    assert not kind_cluster.core.list_namespaced_resource_quota(namespace).items  # none left
    if stage == 4:
        # Redis gone: reads keep answering from Postgres; the sessions it held are the cost
        assert rows["redis"]["readOk"] >= 0.995, rows["redis"]
    if stage == 3:
        sessions_live_in_the_pinned_pod(kind_cluster, namespace, say)
        a_deleted_primary_comes_back(kind_cluster, namespace, say)
    if stage == 4:
        any_web_pod_can_go(kind_cluster, namespace, say)


def sessions_live_in_the_pinned_pod(cluster: Cluster, namespace: str, say) -> None:
    """Stage 3: the load's client is pinned to one web pod (ClientIP), which holds its users'
    sessions: deleting that pod logs them out; deleting another one logs nobody out."""
    with running_load(cluster, namespace) as users:
        pinned = pinned_web_pod(cluster, namespace)
        report = kill(cluster, namespace, "web", "--pod", pinned)
        say(f"  stage 3: pinned pod {pinned} deleted: sessions lost {report['sessions_lost']} "
            f"of {users}, outage {report['outage_seconds']} s")
        assert report["sessions_lost"] >= 1, report
        pinned = pinned_web_pod(cluster, namespace)
        others = sorted(set(web_pods(cluster, namespace)) - {pinned})
        report = kill(cluster, namespace, "web", "--pod", others[0])
        say(f"  stage 3: unpinned pod {others[0]} deleted: sessions lost "
            f"{report['sessions_lost']}")
        assert report["sessions_lost"] == 0, report
        assert report["during"] == {"read": 1.0, "write": 1.0, "session": 1.0}, report


def a_deleted_primary_comes_back(cluster: Cluster, namespace: str, say) -> None:
    """Stage 3: the primary deleted (a graceful stop, fast shutdown): writes answer again by
    themselves once its replacement is up (measured on kind: 2–12 s after the deletion; the
    bound leaves room for a busy node)."""
    report = kill(cluster, namespace, "db-primary")
    say(f"  stage 3: primary deleted: writes {report['during']['write']} until recovered "
        f"{report['recovered_after']} s after the deletion")
    assert report["recovered"] and report["recovered_after"] <= 30, report


def any_web_pod_can_go(cluster: Cluster, namespace: str, say) -> None:
    """Stage 4: sessions live in Redis and requests spread over the web pods: a web pod
    deleted costs no request; one killed outright costs at most what was in flight."""
    with running_load(cluster, namespace):
        report = kill(cluster, namespace, "web")
        say(f"  stage 4: web pod deleted: {report['during']}, sessions lost "
            f"{report['sessions_lost']}")
        assert report["sessions_lost"] == 0, report
        assert report["during"] == {"read": 1.0, "write": 1.0, "session": 1.0}, report
        report = kill(cluster, namespace, "web", "--force")
        # Killed outright: what was in flight at that pod fails. Over the minute after the kill,
        # at least 99.5 % of reads and writes succeed.
        minute = wait_until(lambda: ticks_until(cluster, namespace, report["killed_at"] + 60),
                            timeout=120, interval=2, what="a minute of load after the kill",
                            tolerate=TRANSIENT)
        shares, counts = chaos.share_ok(minute)
        say(f"  stage 4: web pod force-killed: {report['during']} until recovered; the minute "
            f"after: {shares} of {counts}; sessions lost {report['sessions_lost']}")
        assert report["sessions_lost"] == 0, report
        assert shares["read"] >= 0.995 and shares["write"] >= 0.995, (shares, counts)


def kill(cluster: Cluster, namespace: str, *args: str) -> dict:
    run = scalestage_cli(cluster, namespace, "chaos", "kill", *args, "--json")
    report = json_result(run)
    assert run.returncode == 0, run.stderr[-3000:]
    return report


def pinned_web_pod(cluster: Cluster, namespace: str) -> str:
    return cluster.exec(namespace, load_pod_name(cluster, namespace), "python3", "-c",
                        WHO_ANSWERS, f"http://{INSTANCE}").strip()


def web_pods(cluster: Cluster, namespace: str) -> list[str]:
    return [p.metadata.name for p in pods(cluster, namespace,
                                          f"{INSTANCE_LABEL}={INSTANCE},{COMPONENT}=web")
            if p.metadata.deletion_timestamp is None]


@contextlib.contextmanager
def running_load(cluster: Cluster, namespace: str, users: int = 4):
    """`scalestage load --detach` until the block ends, then its verdict: every acknowledged
    write read back exactly once."""
    run = scalestage_cli(cluster, namespace, "load", "--detach", "--duration", "0", "--rate",
                         "20", "--users", str(users))
    assert run.returncode == 0, run.stdout + run.stderr
    wait_until(lambda: any(line.get("event") == "tick" and line.get("writes_acked")
                           for line in load_lines(cluster, namespace)),
               timeout=180, interval=1, what="the load writing", tolerate=TRANSIENT)
    try:
        yield users
    finally:  # stopped whatever happened: a load left running would be taken by the next check
        cluster.exec(namespace, load_pod_name(cluster, namespace), "touch", load.STOP_FILE)
        summary = wait_until(lambda: next((line for line in load_lines(cluster, namespace)
                                           if line.get("event") == "summary"), None),
                             timeout=300, interval=2, what="the load's verdict",
                             tolerate=TRANSIENT)
    assert_writes_kept({"load": summary})


def ticks_until(cluster: Cluster, namespace: str, end: float) -> list[dict] | None:
    """The load's ticks after `end - 60` up to `end`, once the load has reached `end`."""
    ticks = [line for line in load_lines(cluster, namespace) if line.get("event") == "tick"]
    if not ticks or ticks[-1]["t"] < end:
        return None
    return [tick for tick in ticks if end - 60 < tick["t"] <= end]
