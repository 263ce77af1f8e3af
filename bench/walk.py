"""The walk's figures on kind: apply→Ready of every step 1→2→3→4→5→(3 shards)→4→3→2→1 and the
longest write pause of every data move, on a seeded dataset with the load Job running.

Workload: `chirp seed` of BENCH_WALK_USERS users (default 10,000) with 10 posts and 10 follows each
(100,000 posts), then `scalestage load`'s Job (4 users, 20 req/s) through the front door for the
whole walk. Goals (the walk issue): in place ≤ 30 s, data-moving ≤ 60 s, writes held ≤ 2 s.

Needs the kind cluster with the operator (`make up` brings both; this runs it first). Uses its own
namespace, deleted at the end. Prints a Markdown table.
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))
sys.path.append(str(ROOT / "operator"))

from kubernetes import client, config  # noqa: E402

from scalestage.names import GROUP, VERSION  # noqa: E402
from scalestage.specs import load  # noqa: E402
from scalestage.specs.load import LoadOptions  # noqa: E402
from tests.e2e.kindcluster import CONTEXT, TRANSIENT, Cluster  # noqa: E402
from tests.e2e.walking import (  # noqa: E402
    INSTANCE,
    RESTRICTED,
    last_tick,
    reached,
    scalestage,
    walk_step,
)
from tests.polling import wait_until  # noqa: E402

USERS = int(os.environ.get("BENCH_WALK_USERS", "10000"))
WALK = ((2, 0), (3, 0), (4, 0), (5, 2), (5, 3), (4, 0), (3, 0), (2, 0), (1, 0))
GOALS = {False: 30, True: 60}  # seconds to Ready: in place, data-moving
LOAD = LoadOptions(users=4, concurrency=4, rate=20, duration=0, verify_timeout=300)


def main() -> None:
    subprocess.run([str(ROOT / "hack" / "up.sh")], check=True)
    api = config.new_client_from_config(context=CONTEXT)
    cluster = Cluster(CONTEXT, client.CoreV1Api(api), client.AppsV1Api(api))
    namespace = cluster.create_namespace(f"bench-walk-{uuid.uuid4().hex[:6]}", labels=RESTRICTED)
    try:
        run(cluster, namespace)
    finally:
        cluster.delete_namespace(namespace)


def run(cluster: Cluster, namespace: str) -> None:
    cluster.apply({"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScaleStage",
                   "metadata": {"name": INSTANCE}, "spec": {"stage": 1}}, namespace=namespace)
    wait_until(lambda: reached(cluster, namespace, (1, 0)), timeout=600, interval=1,
               what="stage 1 Ready", tolerate=TRANSIENT)
    started = time.monotonic()
    cluster.exec(namespace, f"{INSTANCE}-monolith-0", "chirp", "seed", "--users", str(USERS),
                 "--posts", "10", "--follows", "10", timeout=3600)
    print(f"seeded {USERS} users, {USERS * 10} posts, {USERS * 10} follows in "
          f"{time.monotonic() - started:.0f} s", flush=True)
    found = scalestage(cluster, namespace)
    cluster.apply(load.build(found, load.app_image(found), LOAD), namespace=namespace)
    wait_until(lambda: last_tick(cluster, namespace).get("writes_acked", 0) > 0, timeout=120,
               interval=1, what="the load writing", tolerate=TRANSIENT)

    rows, current = [], (1, 0)
    for target in WALK:
        row = walk_step(cluster, namespace, current, target, timeout=1800)
        print(f"  {row['step'][0]}→{row['step'][1]}: {row['seconds']:.0f} s", flush=True)
        rows.append(row)
        current = target

    print(f"\n{USERS * 10:,} posts, load: {LOAD.users} users at {LOAD.rate:g} req/s\n")
    print("| step | kind | apply→Ready | goal | writes held | sessions lost | errors |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        goal = GOALS[row["moved_data"]]
        verdict = "✓" if row["seconds"] <= goal else "✗"
        held = f"{row['pause']:.2f} s" if row["pause"] is not None else ""
        errors = ", ".join(f"{k} {v}" for k, v in sorted(row["errors"].items())) or "0"
        print(f"| {row['step'][0]}→{row['step'][1]} | "
              f"{'data move' if row['moved_data'] else 'in place'} | {row['seconds']:.0f} s | "
              f"≤ {goal} s {verdict} | {held} | {row['sessions_lost']} | {errors} |")


if __name__ == "__main__":
    main()
