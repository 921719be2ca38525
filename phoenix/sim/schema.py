"""Request validation against PVE's shipped API schema, with PVE's exact error texts.

Mirrors pve-common ``PVE::JSONSchema`` (``check_object``, ``check_prop``, ``check_type``,
``check_format``, ``parse_property_string``): the same check order, the first failing check per
value wins, errors on one key joined with the two characters ``\\n``, property-string sub-errors
reported as ``invalid format - format error\\n<key>.<sub>: <msg>\\n``.  Every problem becomes a
400 ``Parameter verification failed.``; nothing in here may raise anything else.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from phoenix.sim import propstr
from phoenix.sim.core import param_error
from phoenix.sim.schema_formats import NAMED_HASH_FORMATS, VALIDATORS, FormatError, split_list

__all__ = ["SCHEMA", "Endpoint", "Router", "validate", "check_format", "drive_format", "net_format"]

log = logging.getLogger("phoenix.sim.schema")

SCHEMA_FILE = Path(__file__).parent / "data" / "api-schema-subset.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
INDEXED_KEYS: dict[str, list[int]] = SCHEMA["_meta"]["indexed_keys"]

_NUMBER_RE = re.compile(r"^[+-]?([0-9]+\.[0-9]+|[0-9]+\.|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?$")
_INTEGER_RE = re.compile(r"^[+-]?[0-9]+$")
_INDEXED_RE = re.compile(r"^([a-z_]+?)([0-9]+)$")
_ROUTE_CACHE_SIZE = 8192      # distinct request paths remembered by Router.match (then start over)
_MISSING = object()


class Endpoint:
    """One ``METHOD template`` of the schema: its info and a parameter lookup that knows ``net[n]``."""

    def __init__(self, method: str, template: str, info: dict[str, Any]):
        self.method = method
        self.template = template
        self.info = info
        params = info.get("parameters", {})
        self.properties: dict[str, dict] = params.get("properties", {}) or {}
        self.additional = bool(params.get("additionalProperties", 0))
        self.allowtoken = bool(info.get("allowtoken", 1))

    def property(self, name: str) -> dict | None:
        if name in self.properties:
            return self.properties[name]
        match = _INDEXED_RE.match(name)
        if match and str(int(match.group(2))) == match.group(2):
            base = f"{match.group(1)}[n]"
            bounds = INDEXED_KEYS.get(base)
            if base in self.properties and bounds and bounds[0] <= int(match.group(2)) <= bounds[1]:
                return self.properties[base]
        return None


class Router:
    """Maps ``/nodes/pve/qemu/100/config`` to its schema template and path parameters."""

    def __init__(self, endpoints: dict[str, dict] | None = None):
        endpoints = SCHEMA["endpoints"] if endpoints is None else endpoints
        self._routes: list[tuple[re.Pattern, str, dict[str, Endpoint]]] = []
        for template, methods in endpoints.items():
            regex = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(1) == 'volume' else '[^/]+'})",
                           re.escape(template))
            by_method = {method: Endpoint(method, template, info) for method, info in methods.items()}
            self._routes.append((re.compile(f"^{regex}$"), template, by_method))
        # literal segments beat parameters: try templates with fewer placeholders first
        self._routes.sort(key=lambda r: r[1].count("{"))
        self._cache: dict[str, tuple[str, dict[str, str], dict[str, Endpoint]] | None] = {}
        self._any, self._names = _alternation([(regex.pattern, template) for regex, template, _ in self._routes])

    def match(self, path: str) -> tuple[str, dict[str, str], dict[str, Endpoint]] | None:
        """The first template (fewest placeholders) matching ``path``; answers are memoised per path."""
        cached = self._cache.get(path, _MISSING)
        if cached is _MISSING:
            cached = self._match(path)
            if len(path) <= 512:
                if len(self._cache) >= _ROUTE_CACHE_SIZE:
                    self._cache.clear()
                self._cache[path] = cached
        if cached is None:
            return None
        template, params, by_method = cached
        return template, dict(params), by_method      # callers may change their path params

    def _match(self, path: str) -> tuple[str, dict[str, str], dict[str, Endpoint]] | None:
        """The first template (in ``_routes`` order) whose regex matches ``path``, found with one search
        of their alternation instead of one search per template."""
        path = path.rstrip("/") or "/"
        found = self._any.match(path)
        if found is None or found.lastgroup is None:
            return None
        index = int(found.lastgroup[1:])
        _, template, by_method = self._routes[index]
        return template, {name: unquote(found.group(group)) for name, group in self._names[index]}, by_method


def _alternation(routes: list[tuple[str, str]]) -> tuple[re.Pattern, list[list[tuple[str, str]]]]:
    """One regex trying the routes' (anchored) regexes in order: ``r<i>`` is the group of route i.

    An alternation answers with its first alternative that matches, exactly as trying each regex
    in turn, and its last closed group is that alternative's outer group.  Route i's path
    parameter ``name`` is renamed ``r<i>_<name>`` (group names must be unique); the second list
    maps them back, per route.
    """
    alternatives: list[str] = []
    names: list[list[tuple[str, str]]] = []
    for index, (pattern, _template) in enumerate(routes):
        params: list[tuple[str, str]] = []

        def rename(match: re.Match, index: int = index, params: list[tuple[str, str]] = params) -> str:
            params.append((match.group(1), f"r{index}_{match.group(1)}"))
            return f"(?P<r{index}_{match.group(1)}>"

        body = re.sub(r"\(\?P<(\w+)>", rename, pattern.removeprefix("^"))
        alternatives.append(f"(?P<r{index}>{body})")
        names.append(params)
    return re.compile("|".join(alternatives)), names


# --- check_prop and friends --------------------------------------------------------------------

def _add_error(errors: dict[str, str], path: str, message: str) -> None:
    path = path or "_root"
    errors[path] = f"{errors[path]}\\n{message}" if path in errors else message


def _perl_number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _scalar_text(value: Any) -> str | None:
    """How Perl would see a JSON scalar as text; None for arrays/objects/booleans."""
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        return None
    if isinstance(value, (int, float)):
        return _perl_number(value)
    return str(value)


def _check_type(path: str, type_: str | None, value: Any, errors: dict[str, str]) -> bool:
    if not type_ or type_ == "any":
        return True
    if isinstance(value, (list, dict)):
        _add_error(errors, path, f"type check ('{type_}') failed - got {'ARRAY' if isinstance(value, list) else 'HASH'}")
        return False
    if isinstance(value, bool):
        if type_ == "boolean":
            return True
        _add_error(errors, path, f"type check ('{type_}') failed - got JSON::PP::Boolean")
        return False
    text = _scalar_text(value)
    if type_ == "boolean" and text not in ("0", "1"):
        _add_error(errors, path, f"type check ('{type_}') failed - got '{text}'")
        return False
    if type_ == "integer" and not _INTEGER_RE.search(text):
        _add_error(errors, path, f"type check ('{type_}') failed - got '{text}'")
        return False
    if type_ == "number" and not _NUMBER_RE.search(text):
        _add_error(errors, path, f"type check ('{type_}') failed - got '{text}'")
        return False
    return True


@lru_cache(maxsize=None)
def _compile_pattern(pattern: str) -> re.Pattern | None:
    python = pattern.replace("(?^:", "(?:")
    try:
        return re.compile(f"^{python}$")
    except re.error:
        log.warning("schema pattern %r is not a Python regex; not checked", pattern)
        return None


def check_prop(value: Any, schema: dict, path: str, errors: dict[str, str]) -> None:
    """PVE's ``check_prop`` for one scalar value (strings from forms or JSON scalars)."""
    if value is None:
        if not schema.get("optional") and not schema.get("alias"):
            _add_error(errors, path, "property is missing and it is not optional")
        return
    if not _check_type(path, schema.get("type"), value, errors):
        return
    if isinstance(value, bool):
        value = 1 if value else 0
    text = _scalar_text(value)
    if schema.get("format"):
        try:
            check_format(schema["format"], text, path)
        except FormatError as exc:
            _add_error(errors, path, f"invalid format - {exc}")
            return
    pattern = schema.get("pattern")
    if pattern:
        compiled = _compile_pattern(pattern)
        if compiled is not None and not compiled.search(text):
            _add_error(errors, path, "value does not match the regex pattern")
            return
    if schema.get("maxLength") is not None and len(text) > int(schema["maxLength"]):
        _add_error(errors, path, f"value may only be {schema['maxLength']} characters long")
        return
    if schema.get("minLength") is not None and len(text) < int(schema["minLength"]):
        _add_error(errors, path, f"value must be at least {schema['minLength']} characters long")
        return
    if _NUMBER_RE.search(text):
        number = float(text)
        if schema.get("maximum") is not None and number > float(schema["maximum"]):
            _add_error(errors, path, f"value must have a maximum value of {_perl_number(schema['maximum'])}")
            return
        if schema.get("minimum") is not None and number < float(schema["minimum"]):
            _add_error(errors, path, f"value must have a minimum value of {_perl_number(schema['minimum'])}")
            return
    enum = schema.get("enum")
    if enum and text not in [str(choice) for choice in enum]:
        _add_error(errors, path, f"value '{text}' does not have a value in the enumeration '{', '.join(map(str, enum))}'")


def check_format(fmt: Any, value: str, path: str) -> None:
    """PVE's ``check_format``: property-string dicts, named formats and their ``-list``/``-opt`` forms."""
    if isinstance(fmt, dict):
        parse_property_string(fmt, value, path)
        return
    if fmt == "regex":
        return
    name, kind = _format_kind(fmt)
    if name in NAMED_HASH_FORMATS and kind == "none":
        parse_property_string(NAMED_HASH_FORMATS[name], value, path)
        return
    validator = VALIDATORS.get(name)
    if validator is None:
        return  # a format the simulator does not model: accepted as PVE would accept a valid value
    if kind == "list":
        for item in split_list(value):
            validator(item)
    elif kind == "opt":
        if value:
            validator(value)
    else:
        validator(value)


@lru_cache(maxsize=1024)
def _format_kind(fmt: str) -> tuple[str, str]:
    """``pve-vmid-list`` → ``("pve-vmid", "list")``; formats are schema names, so few and asked per request."""
    match = re.match(r"^(.*?)(?:-(list|opt))?$", fmt)
    return match.group(1), match.group(2) or "none"   # type: ignore[union-attr]  # (None for a format with a newline, as before)


def parse_property_string(fmt: dict, data: str, path: str) -> dict[str, str]:
    """Split with the simulator's own :mod:`phoenix.sim.propstr`, then resolve aliases and check every key."""
    default_key = next((key for key, spec in fmt.items() if spec.get("default_key")), None)
    try:
        raw = propstr.split(data, default_key=default_key)
    except propstr.PropertyStringError as exc:
        raise FormatError(str(exc)) from None
    result: dict[str, str] = {}
    for key, value in raw.items():
        if key in result:
            raise FormatError(f"duplicate key in comma-separated list property: {key}\n")
        spec = fmt.get(key)
        if spec and spec.get("alias"):
            key_alias = spec.get("keyAlias")
            if key_alias:
                if key_alias in result:
                    raise FormatError(f"key alias '{key_alias}' is already defined\n")
                result[key_alias] = key
            key = spec["alias"]
            spec = fmt.get(key)
        if not spec:
            raise FormatError(f"invalid key in comma-separated list property: {key}\n")
        if spec.get("type") == "boolean":
            value = propstr.as_boolean(value)
        result[key] = value
    errors: dict[str, str] = {}
    _check_object(path, fmt, result, errors)
    if errors:
        details = "".join(f"{key}: {message}\n" for key, message in sorted(errors.items()))
        raise FormatError("format error\n" + details)
    return result


def _check_object(path: str, schema: dict, values: dict[str, Any], errors: dict[str, str]) -> None:
    for key, spec in schema.items():
        check_prop(values.get(key), spec, f"{path}.{key}" if path else key, errors)
    for key in values:
        spec = schema.get(key)
        requires = spec.get("requires") if spec else None
        if isinstance(requires, str) and values.get(requires) is None:
            full = f"{path}.{key}" if path else key
            _add_error(errors, f"{path}.{requires}" if path else requires,
                       f"missing property - '{full}' requires this property")


# --- a whole request ---------------------------------------------------------------------------

def _convert(spec: dict, value: Any) -> Any:
    type_ = spec.get("type")
    if isinstance(value, bool):
        return int(value)
    if type_ in ("integer", "boolean"):
        return int(_scalar_text(value))
    if type_ == "number":
        return float(_scalar_text(value))
    if type_ == "string" and not isinstance(value, str):
        return _scalar_text(value)
    return value


def validate(endpoint: Endpoint, params: dict[str, Any], path_params: dict[str, str]) -> dict[str, Any]:
    """Check ``params`` (+ path params) against ``endpoint``; return them converted, or raise a 400."""
    errors: dict[str, str] = {}
    merged: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    for key, value in path_params.items():
        if key in merged and _scalar_text(merged[key]) != value:
            _add_error(errors, key, "duplicate parameter (already defined in URI) with conflicting values!")
        merged[key] = value
    for key, spec in endpoint.properties.items():
        if key.endswith("[n]"):
            continue
        if key not in merged:
            check_prop(None, spec, key, errors)
    resolved: dict[str, dict] = {}
    for key, value in merged.items():
        spec = endpoint.property(key)
        if spec is None:
            if not endpoint.additional:
                _add_error(errors, key, "property is not defined in schema and the schema does not allow additional properties")
            continue
        resolved[key] = spec
        check_prop(value, spec, key, errors)
    for key, spec in resolved.items():
        requires = spec.get("requires")
        if isinstance(requires, str) and requires not in merged:
            _add_error(errors, requires, f"missing property - '{key}' requires this property")
    if errors:
        raise param_error(errors)
    return {key: (_convert(resolved[key], value) if key in resolved else value) for key, value in merged.items()}


# --- property-string formats the model prints with ------------------------------------------------

_CONFIG_PARAMS = SCHEMA["endpoints"]["/nodes/{node}/qemu/{vmid}/config"]["POST"]["parameters"]["properties"]


def drive_format(key: str | None) -> dict[str, dict]:
    """The schema's format dict of a drive key (``scsi3`` → ``scsi[n]``'s), ``{}`` if not a drive."""
    if key is None:
        return {}
    match = _INDEXED_RE.match(key)
    name = f"{match.group(1)}[n]" if match and match.group(1) in ("ide", "sata", "scsi", "virtio", "unused") else key
    fmt = _CONFIG_PARAMS.get(name, {}).get("format")
    return fmt if isinstance(fmt, dict) else {}


def net_format() -> dict[str, dict]:
    return _CONFIG_PARAMS["net[n]"]["format"]
