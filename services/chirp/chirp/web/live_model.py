"""The live architecture page's model, from what was read: pure functions, no I/O.

Inputs are plain JSON as the Kubernetes API returns it (pods, the ScaleStage) and the operator's
architecture document; the output is what static/architecture.js draws, once a second. The
document says which components this stage runs and how to find their pods (each component's
`selector`); the pods say what runs now (Ready, restarts, going away); the ScaleStage says the
phase and the stage asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def matches(selector: Mapping[str, str], labels: Mapping[str, str] | None) -> bool:
    """A pod with these labels is selected (every label of the selector, same value)."""
    labels = labels or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_view(pod: Mapping, serving_pod: str | None = None) -> dict:
    """One pod as the page shows it: Ready, restarts (all containers, init sidecars too), and
    whether it is going away (deleted, still terminating)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    containers = [*(status.get("initContainerStatuses") or []),
                  *(status.get("containerStatuses") or [])]
    terminating = meta.get("deletionTimestamp") is not None
    ready = conditions.get("Ready") == "True" and not terminating
    return {
        "name": meta.get("name", ""),
        "ready": ready,
        "state": "terminating" if terminating else ("ready" if ready else "not-ready"),
        "phase": status.get("phase", "Unknown"),
        "restarts": sum(int(c.get("restartCount") or 0) for c in containers),
        "serving": meta.get("name") == serving_pod,
        "created": meta.get("creationTimestamp"),
    }


def component_views(document: Mapping, pods: Iterable[Mapping] | None,
                    serving_pod: str | None) -> list[dict]:
    """Each component of the document with its pods (None: the pods are not known here), marked
    SPOF when the document lists it as one."""
    spofs = set(document.get("spofs") or [])
    pods = list(pods) if pods is not None else None
    out = []
    for component in document.get("components") or []:
        view = {"name": component["name"], "kind": component.get("kind"),
                "replicas": component.get("replicas"), "spof": component["name"] in spofs,
                "pods": None, "ready": None}
        if pods is not None:
            mine = [pod_view(p, serving_pod) for p in pods
                    if matches(component.get("selector") or {}, (p.get("metadata") or {})
                               .get("labels"))]
            mine.sort(key=lambda p: (p["created"] or "", p["name"]))
            view["pods"] = mine
            view["ready"] = sum(p["ready"] for p in mine)
        out.append(view)
    return out


def lesson(document: Mapping, stage: int) -> dict | None:
    """What breaks at this stage and what the next one fixes (the document's `lessons`)."""
    return next((item for item in document.get("lessons") or [] if item.get("stage") == stage),
                None)


def progress(scalestage: Mapping | None) -> dict | None:
    """The ScaleStage's phase and stages: asked for (spec) and reached (status)."""
    if not scalestage:
        return None
    spec, status = scalestage.get("spec") or {}, scalestage.get("status") or {}
    return {"phase": status.get("phase"), "wanted": spec.get("stage"),
            "reached": status.get("stage"), "message": status.get("message")}


def page_model(document: Mapping | None, *, stage: int, pods: Iterable[Mapping] | None = None,
               scalestage: Mapping | None = None, served: Mapping | None = None,
               live: bool = False, problem: str | None = None) -> dict:
    """Everything the page draws. `document` None: the operator described nothing (local runs);
    `pods` None: this pod cannot read the cluster (`problem` says why)."""
    document = document or {}
    stage = document.get("stage", stage)
    return {
        "stage": stage,
        "stageName": document.get("stageName"),
        "described": bool(document),
        "live": live,
        "problem": problem,
        "progress": progress(scalestage),
        "components": component_views(document, pods, (served or {}).get("pod")),
        "flows": list(document.get("flows") or []),
        "spofs": list(document.get("spofs") or []),
        "lesson": lesson(document, stage),
        "served": dict(served or {}),
    }
