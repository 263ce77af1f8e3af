"""The CRD from the chart, served by a real API server: bad specs are refused with messages a
person understands; the examples are accepted. (No operator needed: the API server decides.)"""

import json
from pathlib import Path

import pytest
import yaml
from kubernetes.client.exceptions import ApiException


def said(error: ApiException) -> str:
    """What the API server told the user (kubectl prints this message)."""
    return json.loads(error.body)["message"]


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("stage-*.yaml"))
EVERY_EXAMPLE = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))

BAD_SPECS = [
    ({"stage": 7}, "stage must be 1 (monolith)"),
    ({"stage": 0}, "stage must be 1 (monolith)"),
    ({}, "spec.stage: Required value"),
    ({"stage": "three"}, "spec.stage in body must be of type integer"),
    ({"stage": 3, "web": {"replicas": -1}}, "web.replicas must be between 1 and 20"),
    ({"stage": 3, "web": {"replicas": 500}}, "web.replicas must be between 1 and 20"),
    ({"stage": 2, "web": {"replicas": 3}}, "web.replicas needs stage 3 or higher"),
    ({"stage": 3, "database": {"shards": 4}}, "database.shards applies only to stage 5"),
    ({"stage": 5, "database": {"shards": 1}}, "database.shards must be between 2 and 8"),
    ({"stage": 3, "database": {"readReplicas": 0}}, "database.readReplicas must be at least 1"),
    ({"stage": 2, "database": {"readReplicas": 2}},
     "database.readReplicas needs stage 3 or higher"),
    ({"stage": 4, "workers": {"replicas": 2}}, "workers run only at stage 5"),
    ({"stage": 2, "database": {"storage": "lots"}},
     "database.storage must be a size such as 512Mi"),
    ({"stage": 2, "database": {"storage": "5000Gi"}},
     "database.storage must be between 100Mi and 100Gi"),
    ({"stage": 2, "database": {"storage": "1Mi"}},
     "database.storage must be between 100Mi and 100Gi"),
    ({"stage": 3, "images": {"app": "not an image"}}, "must be an image reference"),
    ({"stage": 3, "web": {"resources": {"requests": {"cpu": "lots"}}}},
     "must be a Kubernetes quantity"),
    ({"stage": 3, "webb": {"replicas": 3}}, 'unknown field "spec.webb"'),
    ({"stage": 3, "web": {"replicas": 3, "color": "blue"}}, 'unknown field "spec.web.color"'),
]


@pytest.mark.parametrize("spec, message", BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_spec_is_refused_with_a_human_message(crd, kube, namespace, spec, message):
    # Strict field validation is what kubectl apply uses by default: unknown fields are errors.
    with pytest.raises(ApiException) as refused:
        kube.create(namespace, "chirp", spec, field_validation="Strict")
    assert refused.value.status in (400, 422)
    assert message in said(refused.value), said(refused.value)


def test_long_names_are_refused(crd, kube, namespace):
    with pytest.raises(ApiException) as refused:
        kube.create(namespace, "x" * 31, {"stage": 1})
    assert "the name must be at most 30 characters" in said(refused.value)


def test_storage_cannot_change_after_creation(crd, kube, namespace):
    kube.create(namespace, "chirp", {"stage": 2, "database": {"storage": "2Gi"}})
    with pytest.raises(ApiException) as refused:
        kube.patch_spec(namespace, "chirp", {"database": {"storage": "3Gi"}})
    assert "database.storage cannot change after creation" in said(refused.value)


@pytest.mark.parametrize("example", EVERY_EXAMPLE, ids=[e.name for e in EVERY_EXAMPLE])
def test_examples_are_accepted(crd, kube, namespace, example):
    manifest = yaml.safe_load(example.read_text())
    created = kube.create(namespace, manifest["metadata"]["name"], manifest["spec"],
                          field_validation="Strict")
    assert created["spec"] == manifest["spec"]


def test_five_examples():
    assert [e.name for e in EXAMPLES] == [f"stage-{n}.yaml" for n in range(1, 6)]


def test_printer_columns(crd, control_plane, kube, namespace):
    kube.create(namespace, "chirp", {"stage": 3})
    header = control_plane.kubectl("get", "scalestages", "-n", namespace).stdout.splitlines()[0]
    # the stage reached, the one asked for, and how far along (READY is in `-o wide`)
    assert header.split() == ["NAME", "STAGE", "TARGET", "PHASE", "PROGRESS", "SPOFS", "AGE"]
