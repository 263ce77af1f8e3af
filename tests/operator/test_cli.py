"""`scalestage stage N` and `scalestage status` against the real API server and operator."""

import os
import subprocess
import sys

import pytest

from tests.polling import wait_until

pytestmark = pytest.mark.slow


def scalestage(control_plane, *args):
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "scalestage.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_stage_then_status(operator_process, control_plane, kube, namespace):
    done = scalestage(control_plane, "-n", namespace, "stage", "2")
    assert done.returncode == 0, done.stderr
    assert kube.get(namespace, "chirp")["spec"] == {"stage": 2}
    assert scalestage(control_plane, "-n", namespace, "stage", "3").returncode == 0
    wait_until(lambda: (kube.get(namespace, "chirp").get("status") or {}).get("stage") == 3,
               what="stage 3 applied")
    shown = scalestage(control_plane, "-n", namespace, "status")
    assert shown.returncode == 0, shown.stderr
    assert "stage 3 (load-balanced)" in shown.stdout and "db-replica" in shown.stdout
    assert "single point of failure" in shown.stdout
    refused = scalestage(control_plane, "-n", namespace, "stage", "9")
    assert refused.returncode != 0 and "invalid choice" in refused.stderr
