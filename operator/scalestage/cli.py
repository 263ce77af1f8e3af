"""`scalestage`: move a ScaleStage to another stage, and show where it stands.

    scalestage stage 3             # create or move the ScaleStage `chirp` to stage 3
    scalestage status              # stage, phase, components, single points of failure
    scalestage status --name blog -n demo
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from .names import GROUP, PLURAL, VERSION
from .stages import STAGES

PHASE_STYLE = {"Ready": "green", "Progressing": "yellow", "Pending": "yellow",
               "Migrating": "cyan", "Degraded": "red"}


def status_table(obj: Mapping) -> Table:
    """One ScaleStage as a table: a component per row, SPOFs in red. Pure (easy to test)."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    phase = status.get("phase", "Unknown")
    stage = status.get("stage", spec.get("stage"))
    stage_name = STAGES[stage].name if stage in STAGES else "?"
    title = (f"{obj['metadata']['name']}: stage {stage} ({stage_name})"
             f" · [{PHASE_STYLE.get(phase, 'white')}]{phase}[/]")
    table = Table(title=title, title_justify="left")
    table.add_column("component")
    table.add_column("kind")
    table.add_column("ready", justify="right")
    table.add_column("note")
    spofs = set(status.get("spofs") or [])
    for c in status.get("components") or []:
        ready = f"{c.get('ready', 0)}/{c.get('desired', 0)}"
        style = "green" if c.get("ready", 0) >= c.get("desired", 0) else "yellow"
        spof = c["name"] in spofs or "monolith" in spofs
        note = "[bold red]single point of failure[/]" if spof else ""
        table.add_row(c["name"], c.get("kind", ""), f"[{style}]{ready}[/]", note)
    for cond in status.get("conditions") or []:
        if cond.get("reason") == "MigrationRequired":
            table.caption = f"[red]{cond.get('message', '')}[/]"
    if spec.get("stage") != stage and not table.caption:
        table.caption = f"moving to stage {spec.get('stage')}…"
    return table


def custom_objects():
    from kubernetes import client, config

    try:
        config.load_kube_config()
    except config.ConfigException:
        config.load_incluster_config()
    return client.CustomObjectsApi()


def set_stage(api, namespace: str, name: str, stage: int) -> dict:
    from kubernetes.client.exceptions import ApiException

    try:
        return api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": {"stage": stage}},
            _content_type="application/merge-patch+json")
    except ApiException as error:
        if error.status != 404:
            raise
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ScaleStage",
            "metadata": {"name": name}, "spec": {"stage": stage}}
    return api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scalestage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="chirp", help="the ScaleStage (default: chirp)")
    parser.add_argument("-n", "--namespace", default="default", help="its namespace")
    commands = parser.add_subparsers(dest="command", required=True)
    stage = commands.add_parser("stage", help="create the ScaleStage or move it to stage N")
    stage.add_argument("number", type=int, choices=sorted(STAGES))
    commands.add_parser("status", help="show stage, phase, components and SPOFs")
    args = parser.parse_args(argv)
    console = Console()
    from kubernetes.client.exceptions import ApiException

    api = custom_objects()
    try:
        if args.command == "stage":
            obj = set_stage(api, args.namespace, args.name, args.number)
            requested = f"{args.name}: stage {args.number} ({STAGES[args.number].name}) requested"
            console.print(f"{requested}; watch it with [bold]scalestage status[/] or"
                          " [bold]kubectl get scalestages -w[/]")
        else:
            obj = api.get_namespaced_custom_object(GROUP, VERSION, args.namespace, PLURAL,
                                                   args.name)
            console.print(status_table(obj))
    except ApiException as error:
        console.print(f"[red]{error.status} {error.reason}[/]: {error.body}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
