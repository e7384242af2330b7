"""JSON Schema checking that never leaves the document and never backtracks.

Run-input schemas and agent output schemas are written by workflow authors, so both are checked
here: `$ref` may only point inside the same schema ("#..."), nothing is ever retrieved (no http,
file or data URIs), and every regular expression (`pattern`, `patternProperties`, the `regex`
format) runs on RE2, whose matching time is linear in the input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.exceptions import FormatError, SchemaError, UnknownType
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

_REF_KEYWORDS = ("$ref", "$dynamicRef")
# Keywords whose values are data, not schemas: a "$ref" key inside them is no reference.
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})
_JSON_TYPES = "array, boolean, integer, null, number, object, string"
# Keywords whose values map names to schemas: a "type" key inside them names a property, not the keyword.
_NAMED_SCHEMAS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_ROOT_URI = "urn:flowloom:schema"
_RE2_UNSUPPORTED = (
    "uses a feature the linear-time engine (RE2) does not support, such as backreferences (\\1) or "
    "lookaround ((?=...), (?!...), (?<=...)); rewrite it without them"
)


@dataclass(frozen=True)
class SchemaProblem:
    """One thing wrong with a schema or with a value checked against it; `path` is dotted."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SchemaRefused(ValueError):
    """A schema is invalid, points outside itself, or uses a pattern RE2 cannot run."""


def _no_retrieval(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # referencing's attrs wrapper hides __init__ from mypy


# No retrieve function of ours ever fetches: only the schema itself (and its "#..." parts) resolves.
_REGISTRY: Registry = Registry(retrieve=_no_retrieval)  # type: ignore[call-arg]


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    options.never_capture = True
    options.max_mem = 8 << 20
    return options


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re2._Regexp:
    """`pattern` compiled by RE2; SchemaRefused when RE2 cannot run it (backreferences, lookaround)."""
    try:
        return re2.compile(pattern, options=_options())
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise SchemaRefused(f"pattern {pattern!r} {_RE2_UNSUPPORTED} ({reason})") from None


def pattern_problem(pattern: str) -> str | None:
    """Why RE2 cannot run `pattern`, or None when it can."""
    try:
        compile_pattern(pattern)
    except SchemaRefused as exc:
        return str(exc)
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:100]}... ({len(text):,} characters)"


def _matches(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).search(text) is not None


# --- keywords that use regular expressions, on RE2 -----------------------------------------------


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield ValidationError(f"{_short(instance)} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, pattern_properties: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _matched_by_patterns(schema: Mapping[str, Any], key: str) -> bool:
    return any(_matches(pattern, key) for pattern in schema.get("patternProperties", {}))


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    extras = [k for k in instance if k not in properties and not _matched_by_patterns(schema, k)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        listed = ", ".join(_short(e) for e in sorted(extras, key=str)[:20])
        yield ValidationError(f"Additional properties are not allowed ({listed} unexpected)")


def _is_valid(validator: Any, instance: Any, subschema: Any) -> bool:
    return next(iter(validator.descend(instance, subschema)), None) is None


def _evaluated_keys(validator: Any, instance: Mapping[str, Any], schema: Any) -> set[str]:
    """Keys evaluated by `schema` (for unevaluatedProperties): jsonschema's walk, with RE2."""
    if not isinstance(schema, Mapping):
        return set()
    keys: set[str] = set()
    for keyword in _REF_KEYWORDS:
        if (ref := schema.get(keyword)) is not None:
            resolved = validator._resolver.lookup(ref)
            inner = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(inner, instance, resolved.contents)
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if (subschema := schema.get(keyword)) is not None:
            keys |= {k for k, v in instance.items() if _is_valid(validator, v, subschema)}
    keys |= {k for k in instance if _matched_by_patterns(schema, k)}
    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            keys |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _is_valid(validator, instance, subschema):
                keys |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        branch = "then" if validator.evolve(schema=schema["if"]).is_valid(instance) else "else"
        if branch == "then":
            keys |= _evaluated_keys(validator, instance, schema["if"])
        if branch in schema:
            keys |= _evaluated_keys(validator, instance, schema[branch])
    return keys


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    bad = [k for k in instance if k not in evaluated and not _is_valid(validator, instance[k], unevaluated)]
    if bad:
        listed = ", ".join(_short(k) for k in sorted(bad, key=str)[:20])
        if unevaluated is False:
            yield ValidationError(f"Unevaluated properties are not allowed ({listed} unexpected)")
        else:
            yield ValidationError(f"Unevaluated properties are not valid under the given schema ({listed})")


# --- formats: only checks that run in linear time and never use Python's `re` on user input --------

FORMATS = FormatChecker(formats=())


@FORMATS.checks("regex", raises=SchemaRefused)
def _is_regex(instance: object) -> bool:
    return not isinstance(instance, str) or compile_pattern(instance) is not None


@FORMATS.checks("email")
@FORMATS.checks("idn-email")
def _is_email(instance: object) -> bool:
    return not isinstance(instance, str) or "@" in instance


@FORMATS.checks("ipv4", raises=ValueError)
def _is_ipv4(instance: object) -> bool:
    return not isinstance(instance, str) or bool(ipaddress.IPv4Address(instance))


@FORMATS.checks("ipv6", raises=ValueError)
def _is_ipv6(instance: object) -> bool:
    return not isinstance(instance, str) or bool(ipaddress.IPv6Address(instance))


SafeValidator = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "unevaluatedProperties": _unevaluated_properties,
    },
)


def _dotted(parts: Any) -> str:
    return ".".join(str(p) for p in parts)


def _outside_refs(value: Any, path: tuple[Any, ...] = ()) -> Iterator[SchemaProblem]:
    """Every `$ref`/`$dynamicRef` that is not a same-document reference ("#...")."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key in _REF_KEYWORDS and isinstance(item, str) and not item.startswith("#"):
                yield SchemaProblem(
                    _dotted((*path, key)),
                    f"{key} {item[:200]!r} points outside this schema; only references inside the same "
                    'schema are allowed (e.g. "#/$defs/name"); copy the referenced schema into "$defs"',
                )
            elif key not in _DATA_KEYWORDS:
                yield from _outside_refs(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _outside_refs(item, (*path, index))


def _same_document_refs(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, target) of every "#..." `$ref`, outside data keywords."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith("#"):
                yield (*path, key), item
            elif key not in _DATA_KEYWORDS:
                yield from _same_document_refs(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _same_document_refs(item, (*path, index))


def _has_nested_id(value: Any, top: bool = True) -> bool:
    if isinstance(value, Mapping):
        if not top and "$id" in value:
            return True
        return any(_has_nested_id(v, False) for k, v in value.items() if k not in _DATA_KEYWORDS)
    if isinstance(value, list):
        return any(_has_nested_id(v, False) for v in value)
    return False


def _dangling_refs(schema: Any) -> Iterator[SchemaProblem]:
    """Every "#..." `$ref` that names nothing in the schema (checked when no nested `$id` moves the base)."""
    if not isinstance(schema, Mapping) or _has_nested_id(schema):
        return
    resource = DRAFT202012.create_resource(schema)
    uri = resource.id() or _ROOT_URI
    resolver = _REGISTRY.with_resource(uri, resource).resolver(base_uri=uri)
    for path, ref in _same_document_refs(schema):
        try:
            resolver.lookup(ref)
        except (Unresolvable, LookupError, TypeError, ValueError):
            yield SchemaProblem(
                _dotted(path),
                f'$ref {ref[:200]!r} points to nothing in this schema (define it under "$defs")',
            )


def _meta_message(error: ValidationError) -> str:
    """The metaschema's complaint, worded for people where jsonschema's is cryptic."""
    if isinstance(error.cause, SchemaRefused):
        return str(error.cause)
    path = list(error.absolute_path)
    keyword = bool(path) and path[-1] == "type" and (len(path) < 2 or path[-2] not in _NAMED_SCHEMAS)
    if keyword and error.validator == "anyOf":
        return (
            f"{_short(error.instance)} is not a JSON Schema type; use one of {_JSON_TYPES} "
            "(or a list of them)"
        )
    return error.message


def schema_problems(schema: Any) -> list[SchemaProblem]:
    """Everything wrong with `schema`: not a valid 2020-12 schema (the metaschema check, as
    `Draft202012Validator.check_schema` does it, formats included), outside `$ref`s, `$ref`s
    to nothing, RE2-less patterns."""
    problems = list(_outside_refs(schema))
    meta = Draft202012Validator(
        Draft202012Validator.META_SCHEMA, registry=SPECIFICATIONS, format_checker=FORMATS
    )
    for error in sorted(meta.iter_errors(schema), key=lambda e: [str(p) for p in e.absolute_path]):
        problems.append(SchemaProblem(_dotted(error.absolute_path), _meta_message(error)))
    if not problems:
        problems.extend(_dangling_refs(schema))
    return problems


def check_schema(schema: Any) -> None:
    """Raise SchemaRefused naming the first problem of `schema` (for config validators)."""
    problems = schema_problems(schema)
    if problems:
        raise SchemaRefused(str(problems[0]))


def instance_problems(schema: Mapping[str, Any], instance: Any) -> list[SchemaProblem]:
    """Why `instance` does not match `schema` (empty when it does); nothing is fetched, RE2 only."""
    validator = SafeValidator(schema, registry=_REGISTRY, format_checker=FORMATS)
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    except Unresolvable as exc:
        return [SchemaProblem("", f"the schema's reference {exc} cannot be resolved inside the schema")]
    except SchemaRefused as exc:
        return [SchemaProblem("", str(exc))]
    except FormatError as exc:
        return [SchemaProblem("", exc.message)]
    except (SchemaError, UnknownType) as exc:  # a schema nobody checked with schema_problems first
        reason = exc.message if isinstance(exc, SchemaError) else f"unknown type {exc.type!r}"
        return [SchemaProblem("", f"the schema itself is invalid ({reason}); fix the schema")]
    return [SchemaProblem(_dotted(e.absolute_path), e.message) for e in errors]
