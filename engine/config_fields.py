"""Which node config fields take templates: powers and secret references are taken as written.

A `{{ }}` in a secret name would let run inputs pick which credential a step sends, and one in a
power such as `tool.sql`'s `allow_writes` would let an operator's inputs switch writes on: both
must come from the (editor-saved) definition itself. A config field is fixed when its JSON schema,
or any schema nested in it, says `format: secret`, `x-secret-values` or `x-fixed: true`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel

# json_schema_extra marks a node config field may carry.
FIXED = "x-fixed"  # the field takes no templates (a power, such as allowing writes)
SECRET_FORMAT = "secret"  # a secret's name (the editor offers the secrets store)
SECRET_VALUES = "x-secret-values"  # a mapping whose values are secret names
# The editor offers a list to pick from instead of a typed value: "workflows" (the saved workflows
# of the caller's workspace, by id) or "workflow_versions" (the saved versions of the workflow the
# sibling "workflows" field names). A marker for the side panel only: the engine checks the value.
CHOICES = "x-choices"

_NESTED_KEYS = ("items", "additionalProperties", "not", "if", "then", "else")
_LIST_KEYS = ("anyOf", "allOf", "oneOf", "prefixItems")


def _is_fixed(schema: Any, defs: dict[str, Any], depth: int = 0) -> bool:
    if not isinstance(schema, dict) or depth > 20:
        return False
    if schema.get(FIXED) is True or schema.get("format") == SECRET_FORMAT or schema.get(SECRET_VALUES):
        return True
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        if _is_fixed(defs.get(ref.removeprefix("#/$defs/")), defs, depth + 1):
            return True
    nested = [schema.get(k) for k in _NESTED_KEYS]
    nested += [s for k in _LIST_KEYS for s in schema.get(k) or []]
    nested += list((schema.get("properties") or {}).values())
    return any(_is_fixed(s, defs, depth + 1) for s in nested)


@lru_cache(maxsize=256)
def fixed_fields(model: type[BaseModel]) -> frozenset[str]:
    """Names of `model`'s top-level fields that take no templates."""
    schema = model.model_json_schema()
    defs = schema.get("$defs") or {}
    return frozenset(name for name, prop in (schema.get("properties") or {}).items() if _is_fixed(prop, defs))
