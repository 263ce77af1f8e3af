"""The `scalestage` command's pure parts: the status table."""

from rich.console import Console

from scalestage import cli


def render(obj):
    console = Console(record=True, width=120)
    console.print(cli.status_table(obj))
    return console.export_text()


def scalestage(**status):
    return {"metadata": {"name": "chirp"}, "spec": {"stage": status.get("stage", 3)},
            "status": status}


def test_shows_stage_phase_components_and_spofs():
    text = render(scalestage(stage=3, phase="Progressing", spofs=["db-primary"], components=[
        {"name": "web", "kind": "Deployment", "desired": 3, "ready": 2},
        {"name": "db-primary", "kind": "StatefulSet", "desired": 1, "ready": 1}]))
    assert "stage 3 (load-balanced)" in text and "Progressing" in text
    assert "2/3" in text
    [db_line] = [line for line in text.splitlines() if "db-primary" in line]
    assert "single point of failure" in db_line


def test_shows_a_refused_move():
    obj = scalestage(stage=4, phase="Ready", conditions=[
        {"type": "Progressing", "status": "False", "reason": "LayoutUnknown",
         "message": "data-holding workloads of two layouts exist"}])
    obj["spec"]["stage"] = 5
    assert "two layouts exist" in " ".join(render(obj).split())


def test_a_data_move_shows_a_progress_bar_and_the_walk_ahead():
    obj = scalestage(stage=1, phase="Migrating", path=[2, 3], migration={
        "from": 1, "to": 2, "step": "copying", "rowsCopied": 300, "rowsTotal": 1200,
        "lagSeconds": 0.4})
    obj["spec"]["stage"] = 3
    text = render(obj)
    assert "moving data 1 → 2: copying" in text
    assert "█" * 8 in text and "25%" in text and "300/1200 rows" in text and "lag 0.4 s" in text
    assert "walking to stage 3: 1 → 2 → 3" in text


def test_a_failed_move_says_why():
    obj = scalestage(stage=1, phase="Failed", conditions=[
        {"type": "Ready", "status": "False", "reason": "MoveFailed",
         "message": "Job chirp-move-1-2-run failed: refused"}])
    assert "Job chirp-move-1-2-run failed: refused" in " ".join(render(obj).split())


def test_progress_bar_bounds():
    assert "100%" in cli.progress_bar(0, 0) and "0%" in cli.progress_bar(0, 10)
    assert cli.progress_bar(20, 10).count("█") == 30


def test_new_object_without_status():
    assert "stage 2 (separate-db)" in render({"metadata": {"name": "chirp"}, "spec": {"stage": 2}})


def text_of(table):
    console = Console(record=True, width=140)
    console.print(table)
    return console.export_text()


def test_a_kill_report_shows_each_path_before_and_after_and_the_outage():
    from scalestage import chaos

    ticks = ([{"t": t, "requests": 13, "served": {"read": {"ok": 9, "failed": 0},
                                                  "write": {"ok": 4, "failed": 0},
                                                  "session": {"ok": 12, "failed": 0}}}
               for t in range(1, 4)]
             + [{"t": t, "requests": 13, "served": {"read": {"ok": 9, "failed": 0},
                                    "write": {"ok": 0, "failed": 4},
                                    "session": {"ok": 12, "failed": 0}}} for t in range(4, 9)]
             + [{"t": t, "requests": 13, "served": {"read": {"ok": 9, "failed": 0},
                                    "write": {"ok": 4, "failed": 0},
                                    "session": {"ok": 12, "failed": 0}}} for t in range(9, 15)])
    report = chaos.measure(ticks, component="db-primary", pod="chirp-db-primary-0", forced=False,
                           killed_at=3.0, back_at=8).as_dict()
    text = text_of(cli.kill_table(report))
    assert "db-primary: pod chirp-db-primary-0 deleted" in text and "outage" in text
    [after] = [line for line in text.splitlines() if "kill → recovered" in line]
    assert "100.0%" in after and "54.5%" in after  # reads all worked; writes 24 of 44
    flat = " ".join(text.split())  # the title and caption wrap at the table's width
    assert "users saw failures for 5 s" in flat
    assert "outage 5 s" in flat and "answered again 5 s after the kill" in flat


def test_the_spof_check_table_marks_a_contradiction():
    check = {"stage": 3, "agrees": False, "components": [
        {"component": "db-primary", "declared": True, "measured": True,
         "verdict": "single point of failure", "outageSeconds": 6, "sessionsLost": 0,
         "readOk": 1.0, "writeOk": 0.4, "sessionOk": 1.0},
        {"component": "db-replica", "declared": False, "measured": True,
         "verdict": "undeclared single point of failure", "outageSeconds": 4, "sessionsLost": 0,
         "readOk": 0.7}]}
    text = text_of(cli.spof_table(check))
    assert "contradict" in text
    [replica] = [line for line in text.splitlines() if "db-replica" in line]
    assert "undeclared" in replica and "70.0%" in replica and replica.count("-") >= 2


def test_the_chaos_command_lines(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "custom_objects", lambda context=None: seen.append(context))
    monkeypatch.setattr(cli, "chaos_command", lambda args, api, console: seen.append(vars(args))
                        or 0)
    assert cli.main(["--context", "kind-x", "chaos", "kill", "db-primary", "--force",
                     "-n", "demo"]) == 0
    assert seen[0] == "kind-x"
    assert {k: seen[1][k] for k in ("command", "action", "component", "force", "namespace",
                                    "pod", "json")} == {
        "command": "chaos", "action": "kill", "component": "db-primary", "force": True,
        "namespace": "demo", "pod": None, "json": False}
    assert cli.main(["spof-check", "--json", "--name", "blog"]) == 0
    assert (seen[3]["command"], seen[3]["json"], seen[3]["name"]) == ("spof-check", True, "blog")
