"""Check our TMF answers against the official TM Forum v4 swagger documents (used by every area's API tests).

    check = resource_validator("/work/shared/tmf/specs/TMF629-Customer-v4.0.0.swagger.json", "Customer")
    errors = check(response_json)   # [] when it conforms

A `fields`-narrowed answer is checked with `partial=True` (required attributes may be left out, as TMF630 allows).
Formats are checked too (`date-time` through rfc3339-validator, a test dependency): a date-only value where the spec
says date-time is an error."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from jsonschema import Draft4Validator


FORMAT_CHECKER = Draft4Validator.FORMAT_CHECKER


@lru_cache(maxsize=None)
def _spec(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _drop_required(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_drop_required(v) for v in node]
    return node


def resource_validator(spec_path: str | Path, definition: str, *, partial: bool = False) -> Callable[[Any], list[str]]:
    """A function returning the schema violations of one resource (a dict) or a list of them."""
    if "date-time" not in FORMAT_CHECKER.checkers:  # jsonschema checks date-time only when rfc3339-validator is installed
        raise ImportError("rfc3339-validator is needed to check TMF date-times (pip install -e '.[test]')")
    spec = _spec(str(spec_path))
    if definition not in spec.get("definitions", {}):
        raise KeyError(f"{definition} is not defined in {spec_path}")
    definitions = _drop_required(spec["definitions"]) if partial else spec["definitions"]
    validator = Draft4Validator({"definitions": definitions, "$ref": f"#/definitions/{definition}"}, format_checker=FORMAT_CHECKER)

    def check(instance: Any) -> list[str]:
        items = instance if isinstance(instance, list) else [instance]
        return [f"[{i}] {'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for i, item in enumerate(items)
                for e in validator.iter_errors(item)]

    return check


def list_path(spec_path: str | Path, resource: str) -> str:
    """`/tmf-api/customerManagement/v4/customer` from the document's basePath and the resource name."""
    spec = _spec(str(spec_path))
    return spec["basePath"].rstrip("/") + "/" + resource
