"""The Jobs of a data move: `chirp move run` (copy, then cutover) and `chirp move complete`.

Deterministic names (`<instance>-move-<from>-<to>-<action>`, e.g. chirp-move-4-5x2-run), so a
restarted operator finds the Job it made; every `chirp move` step is idempotent, so a new pod
after a killed one simply runs the step again. Exit code 2 means the app refused the move (e.g.
one database on both sides, docs/moves.md): retrying cannot help, so the pod failure policy fails
the Job at once for a person to read; any other failure (a pod killed, a database not routable
yet, a cutover that could not finish within its bound) gets a new pod.
"""

from __future__ import annotations

from ..names import Names
from ..stages import MONOLITH, SHARDED, Plan, db_clusters
from . import app, common, monolith, postgres, secrets
from .common import Manifest, env_from_secret, metadata, pod_security

COMPONENT = "move"
REFUSED_EXIT_CODE = 2
RETRIES = 20  # pods killed or cutovers past their bound; each rerun picks up where it was
MOVE_LABEL = "scalestage.dev/move"  # from-to, e.g. 1-2 or 5x2-5x3b: the Jobs of one move


def database_urls(plan: Plan, names: Names) -> list[str]:
    """The primaries' Service URLs of a plan, shard 0 first: what the app uses after a cutover
    (they end up in the retired databases' routing record)."""
    if plan.data_layout == MONOLITH:
        return [postgres.url(monolith.database_service(names))]
    return [postgres.url(names.rw(cluster)) for cluster in db_clusters(plan)]


def layout_id(plan: Plan) -> str:
    """A plan's data layout in a Job name: the stage, and at stage 5 the shard count and name
    set (5x2, 5x3b), so two reshards in a row never share a Job."""
    if plan.data_layout == SHARDED:
        return f"{plan.number}x{plan.shards}{plan.shard_set}"
    return str(plan.number)


def move_id(source: Plan, target: Plan) -> str:
    return f"{layout_id(source)}-{layout_id(target)}"


def job_name(names: Names, source: Plan, target: Plan, action: str) -> str:
    return names.of(f"{COMPONENT}-{move_id(source, target)}-{action}")


def move_job(names: Names, source: Plan, target: Plan, action: str) -> Manifest:
    """The Job running `chirp move <action>` from the source plan's databases to the target's."""
    move = move_id(source, target)
    args = ["move", action,
            "--from", ",".join(database_urls(source, names)),
            "--to", ",".join(database_urls(target, names))]
    # `chirp move` takes its databases as arguments: the password is all it needs besides
    container = common.container(
        "move", target.images["app"], target.resources["web"], args=args,
        env=[env_from_secret("PGPASSWORD", names.credentials, secrets.DB_PASSWORD)])
    labels = names.labels(COMPONENT, **{MOVE_LABEL: move})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(names, job_name(names, source, target, action), COMPONENT,
                             **{MOVE_LABEL: move}),
        "spec": {
            "backoffLimit": RETRIES,
            "podFailurePolicy": {"rules": [
                {"action": "FailJob",
                 "onExitCodes": {"containerName": "move", "operator": "In",
                                 "values": [REFUSED_EXIT_CODE]}},
                # a pod deleted or evicted (e.g. its node drained) is not the step's failure
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": pod_security(app.APP_UID),
                    "containers": [container],
                },
            },
        },
    }
