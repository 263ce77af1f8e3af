"""`scalestage load`: the load Job's manifest (restricted pod, owned by the ScaleStage, the right
`chirp load` arguments), the command line, and the live and summary tables."""

import pytest
from rich.console import Console

from scalestage import cli
from scalestage.names import MANAGED_BY, MANAGED_BY_LABEL
from scalestage.specs import load
from scalestage.stages import DEFAULT_IMAGES


def scalestage(name="chirp", **spec):
    return {"apiVersion": "scalestage.dev/v1alpha1", "kind": "ScaleStage",
            "metadata": {"name": name, "namespace": "demo", "uid": "0b5e-uid"},
            "spec": {"stage": 3, **spec}}


def job(options=None, obj=None, image="scalestage/chirp:dev"):
    return load.build(obj or scalestage(), image, options or load.LoadOptions())


def pod_of(manifest):
    return manifest["spec"]["template"]["spec"]


def test_a_job_that_runs_once_and_goes_with_the_scalestage():
    manifest = job()
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    assert manifest["metadata"]["name"] == "chirp-load"
    assert manifest["metadata"]["namespace"] == "demo"
    assert manifest["spec"]["backoffLimit"] == 0
    assert pod_of(manifest)["restartPolicy"] == "Never"
    assert manifest["metadata"]["ownerReferences"] == [{
        "apiVersion": "scalestage.dev/v1alpha1", "kind": "ScaleStage", "name": "chirp",
        "uid": "0b5e-uid"}]  # not a controller: the operator does not manage it


def test_the_operator_never_prunes_it():
    """The operator lists its children by its managed-by label: the CLI's Job does not have it."""
    labels = job()["metadata"]["labels"]
    assert labels[MANAGED_BY_LABEL] == load.MANAGED_BY_CLI != MANAGED_BY
    assert labels["app.kubernetes.io/instance"] == "chirp"
    assert job()["spec"]["template"]["metadata"]["labels"] == labels


def test_the_pod_meets_the_restricted_pod_security_standard():
    pod = pod_of(job())
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001,
                                      "runAsGroup": 10001, "fsGroup": 10001,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    [container] = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}
    assert not {"hostNetwork", "hostPID", "hostIPC", "initContainers"} & set(pod)
    assert [set(v) - {"name"} for v in pod["volumes"]] == [{"emptyDir"}]
    assert "privileged" not in container["securityContext"]
    assert pod["automountServiceAccountToken"] is False  # it talks to the app, not the API


def test_chirp_load_against_the_front_door_with_a_stop_file():
    pod = pod_of(job(load.LoadOptions(users=8, concurrency=3, rate=20, duration=0,
                                      mix="post=1")))
    [container] = pod["containers"]
    assert container["image"] == "scalestage/chirp:dev" and "command" not in container
    assert container["args"] == [
        "load", "--url", "http://chirp", "--users", "8", "--concurrency", "3",
        "--duration", "0", "--verify-timeout", "30", "--stop-file", "/run/load/stop",
        "--rate", "20", "--mix", "post=1"]
    assert container["volumeMounts"] == [{"name": "control", "mountPath": "/run/load"}]
    assert load.STOP_FILE.startswith(container["volumeMounts"][0]["mountPath"] + "/")
    # SIGTERM stops the load, which still verifies before it exits
    assert pod["terminationGracePeriodSeconds"] > 30
    assert "--rate" not in pod_of(job())["containers"][0]["args"]


def test_another_instance_loads_its_own_front_door():
    manifest = job(obj=scalestage("blog"))
    assert manifest["metadata"]["name"] == "blog-load"
    args = pod_of(manifest)["containers"][0]["args"]
    assert args[args.index("--url") + 1] == "http://blog"


def test_the_image_is_the_scalestages_app_image_else_the_default():
    assert load.app_image(scalestage(images={"app": "reg/chirp:1.2"})) == "reg/chirp:1.2"
    assert load.app_image(scalestage()) == DEFAULT_IMAGES["app"]
    assert load.app_image(scalestage(images={"postgres": "x"})) == DEFAULT_IMAGES["app"]


@pytest.mark.parametrize("argv,name,namespace", [
    (["load", "-n", "demo", "--name", "blog"], "blog", "demo"),
    (["-n", "demo", "--name", "blog", "load"], "blog", "demo"),
    (["load"], "chirp", "default"),
])
def test_the_command_line(monkeypatch, argv, name, namespace):
    seen = {}
    monkeypatch.setattr(cli, "custom_objects", lambda context=None: None)
    monkeypatch.setattr(cli, "load_command", lambda args, api, console: seen.update(
        vars(args)) or 0)
    assert cli.main([*argv, "--users", "8", "--rate", "20", "--duration", "0", "--stop"]) == 0
    assert (seen["name"], seen["namespace"]) == (name, namespace)
    assert (seen["users"], seen["rate"], seen["duration"], seen["stop"], seen["detach"]) == (
        8, 20.0, 0.0, True, False)


def render(table):
    console = Console(record=True, width=160)
    console.print(table)
    return console.export_text()


TICK = {"event": "tick", "t": 3.0, "requests": 52, "rps": 52.0, "p50_ms": 4.2, "p95_ms": 31.0,
        "p99_ms": 1850.4, "errors": {"write_failed": 2, "timeout": 1}, "writes_acked": 40,
        "writes_failed": 2, "writes_unknown": 1, "sessions_lost": 1, "longest_write_ms": 1850.4}


def test_the_live_table_shows_the_last_seconds():
    ticks = [dict(TICK, t=float(t)) for t in range(1, 15)]
    text = render(cli.load_table(ticks, "chirp-load"))
    assert "chirp-load" in text and "1850" in text and "4.2" in text
    assert "timeout 1, write_failed 2" in text
    assert "14 " in text and "\n│ 4 " not in text  # the last LOAD_ROWS seconds only


SUMMARY = {"event": "summary", "run": "ab12", "requests": 900, "rps": 60.0, "p50_ms": 4.0,
           "p95_ms": 20.0, "p99_ms": 90.0, "errors": {}, "writes_acked": 200, "writes_failed": 0,
           "writes_unknown": 0, "unknown_present": 0, "sessions_lost": 0, "longest_write_ms": 90,
           "lost": 0, "duplicated": 0, "renumbered": 0, "unverified": 0, "lost_sample": [],
           "duplicated_sample": [], "stopped_by": "duration", "ok": True}


def test_the_summary_says_every_write_was_read_back():
    text = render(cli.summary_table(SUMMARY))
    assert "read back exactly once" in text and "FAILED" not in text
    assert "200 acknowledged" in text and "renumbered" not in text


def test_the_summary_shows_what_was_lost():
    summary = dict(SUMMARY, lost=1, ok=False, lost_sample=["ab12.0.3 (id 77)"])
    text = render(cli.summary_table(summary))
    assert "FAILED" in text and "ab12.0.3 (id 77)" in text
    [lost] = [line for line in text.splitlines() if line.startswith("│ lost")]
    assert "1" in lost


def test_following_the_lines_returns_the_summary():
    import json

    lines = [json.dumps({"event": "start"}), "a warning, not JSON", json.dumps(TICK),
             json.dumps({"event": "verifying", "writes_acked": 40}), json.dumps(SUMMARY)]
    console = Console(record=True, width=160)
    assert cli.follow_load(lines, console, "chirp-load") == SUMMARY
    assert cli.follow_load(lines[:3], console, "chirp-load") is None
    assert "a warning, not JSON" in console.export_text()  # shown when no summary came
