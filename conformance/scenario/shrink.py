"""Smaller variants of a scenario document, for delta-debugging a failing scenario.

Why: a generated scenario that shows a CNI bug has many steps, pods and rules that play no part
in it; a bug report needs the few objects that do. ``candidates`` yields every variant with one
thing removed (a step, an applied policy, a rule, a peer, a port entry, a pod), largest cuts
first; the caller keeps a variant when it still fails and starts again from it. A variant that is
no longer a valid scenario (a later step deletes a policy that is gone, a placeholder names a
removed pod) is dropped by the caller's loader like any invalid file.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

Doc = dict[str, Any]


def focus(doc: Doc, cells: list[tuple[str, str, int, str]]) -> Doc:
    """The document probing only these cells' sources, targets, ports and protocols (every
    step), without declared expectations (they would describe cells no longer probed)."""
    out = copy.deepcopy(doc)
    out["probe"] = {
        "from": sorted({c[0] for c in cells}),
        "to": sorted({c[1] for c in cells}),
        "ports": sorted({c[2] for c in cells}),
        "protocols": sorted({c[3] for c in cells}),
    }
    for step in out.get("steps") or []:
        step.pop("probe", None)
        step.pop("expect", None)
    return out


def candidates(doc: Doc, keep: frozenset[str] = frozenset()) -> Iterator[tuple[str, Doc]]:
    """(what was removed, smaller document) pairs; pods in ``keep`` are never removed. Deletes
    of policies no longer applied before them are dropped along."""
    for label, out in _candidates(doc, keep):
        yield label, _prune_deletes(out)


def _candidates(doc: Doc, keep: frozenset[str]) -> Iterator[tuple[str, Doc]]:
    steps = doc.get("steps") or []
    for i in range(len(steps)):
        if len(steps) > 1:
            yield f"step {i}", _without_step(doc, i)
    for i, step in enumerate(steps):
        for j, obj in enumerate(step.get("apply") or []):
            out = copy.deepcopy(doc)
            del out["steps"][i]["apply"][j]
            yield f"step {i} policy {_name(obj)}", out
    for key in _pods(doc):
        if key not in keep:
            yield f"pod {key}", _without_pod(doc, key)
    for i, step in enumerate(steps):
        for j, obj in enumerate(step.get("apply") or []):
            spec = obj.get("spec") or {}
            for direction in ("ingress", "egress"):
                for r, rule in enumerate(spec.get(direction) or []):
                    out = copy.deepcopy(doc)
                    del out["steps"][i]["apply"][j]["spec"][direction][r]
                    yield f"step {i} policy {_name(obj)} {direction}[{r}]", out
                    for field in ("from", "to", "ports", "protocols"):
                        for k in range(len(rule.get(field) or [])):
                            out = copy.deepcopy(doc)
                            del out["steps"][i]["apply"][j]["spec"][direction][r][field][k]
                            yield f"step {i} policy {_name(obj)} {direction}[{r}].{field}[{k}]", out


def size(doc: Doc) -> dict[str, int]:
    """How big a document is: steps, applied policies, pods."""
    steps = doc.get("steps") or []
    return {
        "steps": len(steps),
        "policies": len({_name(o) for s in steps for o in s.get("apply") or []}),
        "pods": len(_pods(doc)),
    }


def _idents(obj: dict[str, Any]) -> set[str]:
    """The ways a step's ``delete`` may name an applied object."""
    meta = obj.get("metadata") or {}
    kind, name, ns = obj.get("kind", ""), meta.get("name", ""), meta.get("namespace")
    if kind == "NetworkPolicy":
        return {f"{ns}/{name}", f"{kind}/{ns}/{name}"}
    return {f"{kind}/{name}"}


def _prune_deletes(doc: Doc) -> Doc:
    live: dict[str, set[str]] = {}  # each name of a live object -> all its names
    for step in doc.get("steps") or []:
        if "delete" in step:
            step["delete"] = [d for d in step["delete"] if d in live]
            for d in step["delete"]:
                for alias in live.get(d, set()):
                    live.pop(alias, None)
            if not step["delete"]:
                del step["delete"]
        for obj in step.get("apply") or []:
            names = _idents(obj)
            live.update(dict.fromkeys(names, names))
    return doc


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')}/{ns + '/' if ns else ''}{meta.get('name', '?')}"


def _pods(doc: Doc) -> list[str]:
    """Pods the document names explicitly (topology and ``add_pods``)."""
    keys = [p["name"] for p in (doc.get("topology") or {}).get("pods") or []]
    for step in doc.get("steps") or []:
        keys += [p["name"] for p in step.get("add_pods") or []]
    return keys


def _without_step(doc: Doc, index: int) -> Doc:
    """Drop a step; what it applied moves to the next step, so later steps keep their state
    (only the change the step made at that point is gone)."""
    out = copy.deepcopy(doc)
    gone = out["steps"].pop(index)
    if index < len(out["steps"]) and gone.get("apply"):
        nxt = out["steps"][index]
        idents = {_name(o) for o in nxt.get("apply") or []}
        nxt["apply"] = [
            *[o for o in gone["apply"] if _name(o) not in idents],
            *(nxt.get("apply") or []),
        ]
    return out


def _without_pod(doc: Doc, key: str) -> Doc:
    out = copy.deepcopy(doc)
    topo = out.get("topology") or {}
    if topo.get("pods"):
        topo["pods"] = [p for p in topo["pods"] if p["name"] != key]
    for step in out.get("steps") or []:
        if step.get("add_pods"):
            step["add_pods"] = [p for p in step["add_pods"] if p["name"] != key]
        if step.get("remove_pods"):
            step["remove_pods"] = [p for p in step["remove_pods"] if p != key]
        if step.get("label_pods"):
            step["label_pods"] = {k: v for k, v in step["label_pods"].items() if k != key}
        for field in ("add_pods", "remove_pods", "label_pods"):
            if field in step and not step[field]:
                del step[field]
    return out
