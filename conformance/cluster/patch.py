"""PATCH bodies: JSON merge patch, strategic merge patch (the subset these kinds need), JSON patch.

Why: ``kubectl apply``/``label`` send strategic merge patches and clients send merge or JSON
patches to relabel pods; the server must apply each as kube-apiserver does for these kinds.
"""

from __future__ import annotations

import copy
from typing import Any

# Lists that strategic merge patch merges by a key (in the kinds served here); others are replaced.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "conditions": "type",
}


class PatchError(Exception):
    """The patch cannot be applied (HTTP 400/422 at the API)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any, key: str = "") -> Any:
    """Strategic merge patch: like merge patch, plus merge-keyed lists and ``$patch`` directives."""
    if isinstance(patch, list):
        merge_key = MERGE_KEYS.get(key)
        if merge_key is None or not isinstance(target, list):
            return [p for p in copy.deepcopy(patch) if not (isinstance(p, dict) and "$patch" in p)]
        items = copy.deepcopy(target)
        for item in patch:
            if not isinstance(item, dict):
                continue
            ident = item.get(merge_key)
            idx = next(
                (
                    i
                    for i, cur in enumerate(items)
                    if isinstance(cur, dict) and cur.get(merge_key) == ident
                ),
                None,
            )
            if item.get("$patch") == "delete":
                if idx is not None:
                    items.pop(idx)
                continue
            if idx is None:
                items.append(strategic_merge_patch({}, item))
            else:
                items[idx] = strategic_merge_patch(items[idx], item)
        return items
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    for k, value in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(out.get(name), list):
                out[name] = [v for v in out[name] if v not in value]
            continue
        if value is None:
            out.pop(k, None)
        else:
            merged = strategic_merge_patch(out.get(k), value, k)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{path}"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(parts)}")
    return cur


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 with the operations add, remove, replace, test, copy and move."""
    if not isinstance(ops, list):
        raise PatchError(
            "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"
        )
    out = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise PatchError("json: cannot unmarshal into jsonPatchOp")
        kind, parts = op.get("op"), _pointer(str(op.get("path", "")))
        if kind in ("add", "replace", "remove", "move"):
            if not parts:
                if kind in ("add", "replace"):
                    out = copy.deepcopy(op.get("value"))
                    continue
                raise PatchError("cannot remove the whole document")
            value = copy.deepcopy(op.get("value"))
            if kind == "move":
                src = _pointer(str(op.get("from", "")))
                parent_src = _walk(out, src[:-1])
                value = parent_src.pop(src[-1] if isinstance(parent_src, dict) else int(src[-1]))
            parent = _walk(out, parts[:-1])
            last = parts[-1]
            if isinstance(parent, dict):
                if kind in ("replace", "remove") and last not in parent:
                    raise PatchError(
                        f"{kind} operation does not apply: doc is missing key: /{'/'.join(parts)}"
                    )
                if kind == "remove":
                    del parent[last]
                else:
                    parent[last] = value
            elif isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last) if last.isdigit() else -1
                if (
                    idx < 0
                    or idx > len(parent)
                    or (kind in ("replace", "remove") and idx == len(parent))
                ):
                    raise PatchError(f"{kind} operation does not apply: index out of range: {last}")
                if kind == "remove":
                    parent.pop(idx)
                elif kind == "replace":
                    parent[idx] = value
                else:
                    parent.insert(idx, value)
            else:
                raise PatchError(f"doc is missing path: {op.get('path')}")
        elif kind == "test":
            if _walk(out, parts) != op.get("value"):
                raise PatchError(f"testing value {op.get('path')} failed")
        elif kind == "copy":
            value = copy.deepcopy(_walk(out, _pointer(str(op.get("from", "")))))
            out = json_patch(out, [{"op": "add", "path": op.get("path"), "value": value}])
        else:
            raise PatchError(f'Unexpected kind: "{kind}"')
    return out
