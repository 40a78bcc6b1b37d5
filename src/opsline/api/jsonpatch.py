"""JSON Patch (RFC 6902) on a resource's JSON representation, and the JSON Merge Patch (RFC 7396) that turns one
representation into another, so a route that understands merge patches also serves JSON Patch clients."""

from __future__ import annotations

import copy
from typing import Any


class JsonPatchError(ValueError):
    """A malformed patch or a path that does not exist (answered 400, naming the pointer)."""

    def __init__(self, message: str, *, pointer: str = "") -> None:
        super().__init__(message)
        self.pointer = pointer


class JsonPatchTestFailed(JsonPatchError):
    """A `test` operation did not hold (answered 409: the resource is not in the state the client expected)."""


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise JsonPatchError(f"'{pointer}' is not a JSON pointer (it must start with '/')", pointer=pointer)
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(container: list[Any], token: str, pointer: str, *, for_add: bool = False) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise JsonPatchError(f"'{token}' in {pointer} is not an array index", pointer=pointer)
    i = int(token)
    if i > len(container) or (i == len(container) and not for_add):
        raise JsonPatchError(f"{pointer}: index {i} is out of range", pointer=pointer)
    return i


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _tokens(pointer)
    if not tokens:
        raise JsonPatchError("the whole document cannot be the target here", pointer=pointer)
    node = doc
    for t in tokens[:-1]:
        if isinstance(node, dict) and t in node:
            node = node[t]
        elif isinstance(node, list):
            node = node[_index(node, t, pointer)]
        else:
            raise JsonPatchError(f"{pointer} does not exist", pointer=pointer)
    return node, tokens[-1]


def _get(doc: Any, pointer: str) -> Any:
    node = doc
    for t in _tokens(pointer):
        if isinstance(node, dict) and t in node:
            node = node[t]
        elif isinstance(node, list):
            node = node[_index(node, t, pointer)]
        else:
            raise JsonPatchError(f"{pointer} does not exist", pointer=pointer)
    return node


def _add(doc: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return value
    parent, key = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, key, pointer, for_add=True), value)
    else:
        raise JsonPatchError(f"{pointer}: the parent is not an object or array", pointer=pointer)
    return doc


def _remove(doc: Any, pointer: str) -> Any:
    parent, key = _parent(doc, pointer)
    if isinstance(parent, dict):
        if key not in parent:
            raise JsonPatchError(f"{pointer} does not exist", pointer=pointer)
        del parent[key]
    elif isinstance(parent, list):
        del parent[_index(parent, key, pointer)]
    else:
        raise JsonPatchError(f"{pointer} does not exist", pointer=pointer)
    return doc


def apply_json_patch(document: Any, operations: Any) -> Any:
    """The document after `operations` (a list of {op, path, value|from}); `document` is not changed.
    Raises JsonPatchError (malformed operation, missing path) or JsonPatchTestFailed (a `test` that does not hold)."""
    if not isinstance(operations, list):
        raise JsonPatchError("a JSON Patch is an array of operations")
    doc = copy.deepcopy(document)
    for n, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
            raise JsonPatchError(f"operation {n} needs 'op' and 'path'", pointer=f"/{n}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise JsonPatchError(f"operation {n} ({kind}) needs a 'value'", pointer=path)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, copy.deepcopy(op["value"])) if path else copy.deepcopy(op["value"])
        elif kind in ("move", "copy"):
            src = op.get("from")
            if not isinstance(src, str):
                raise JsonPatchError(f"operation {n} ({kind}) needs 'from'", pointer=path)
            value = copy.deepcopy(_get(doc, src))
            if kind == "move":
                if path.startswith(src + "/"):
                    raise JsonPatchError(f"cannot move {src} into itself", pointer=path)
                doc = _remove(doc, src)
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise JsonPatchTestFailed(f"test failed: {path} is not {op['value']!r}", pointer=path)
        else:
            raise JsonPatchError(f"'{kind}' is not a JSON Patch operation", pointer=path)
    return doc


def merge_patch_between(before: Any, after: Any) -> Any:
    """The RFC 7396 merge patch that turns `before` into `after` (removed attributes become null; arrays are replaced)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return after
    patch: dict[str, Any] = {}
    for key in before:
        if key not in after:
            patch[key] = None
    for key, value in after.items():
        if key not in before:
            patch[key] = value
        elif before[key] != value:
            patch[key] = merge_patch_between(before[key], value) if isinstance(value, dict) and isinstance(before[key], dict) else value
    return patch
