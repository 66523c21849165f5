"""The admin API's OpenAPI document (``schemas/admin-openapi.yaml``) for tests: load it,
list its operations, and validate an answer (body and documented headers) against what
is documented for it, or any value against one of its component schemas.

Schemas are validated with JSON Schema 2020-12 (the OpenAPI 3.1 dialect); ``$ref`` s to
``#/components/...`` resolve inside the document.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from ruamel.yaml import YAML

__all__ = [
    "DOCUMENT",
    "HTTP_METHODS",
    "deref",
    "load_document",
    "operations",
    "pointer",
    "resolve",
    "validate_response",
    "validate_schema",
]

DOCUMENT = Path(__file__).resolve().parents[2] / "schemas" / "admin-openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_BASE_URI = "urn:pooldaemon:admin-openapi"


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def load_document(path: Path = DOCUMENT) -> dict[str, Any]:
    """The document as plain data (cached: do not change it)."""
    return _load(path)


def pointer(*parts: str) -> str:
    """A JSON pointer (``/paths/~1healthz/get``) from unescaped segments."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """The node a local ``$ref`` (``#/components/...``) points at; KeyError if none."""
    if not ref.startswith("#"):
        raise KeyError(f"{ref!r}: only local references are used in this document")
    node: Any = doc
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise KeyError(f"{ref!r}: no item {part!r}")
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(f"{ref!r}: no {part!r}")
    return node


def deref(doc: dict[str, Any], node: Any, where: str = "") -> tuple[Any, str]:
    """Follow Reference Objects (``{"$ref": ...}``); the node and its JSON pointer."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            raise KeyError(f"{ref!r}: a reference cycle")
        seen.add(ref)
        node, where = resolve(doc, ref), ref[1:]
    return node, where


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(METHOD, path template, operation)`` for every documented operation, in order."""
    for path, item in doc["paths"].items():
        item, _ = deref(doc, item)
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _response(
    doc: dict[str, Any], method: str, path: str, status: int
) -> tuple[dict[str, Any], str]:
    item = doc["paths"].get(path)
    if item is None:
        raise AssertionError(f"{path} is not documented")
    item, item_at = deref(doc, item, pointer("paths", path))
    operation = item.get(method.lower())
    if operation is None:
        raise AssertionError(f"{method} {path} is not documented")
    responses = operation["responses"]
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            at = f"{item_at}{pointer(method.lower(), 'responses', key)}"
            return deref(doc, responses[key], at)
    raise AssertionError(f"{method} {path}: status {status} is not documented")


_REGISTRIES: dict[int, tuple[dict[str, Any], Registry[Any]]] = {}


def _registry(doc: dict[str, Any]) -> Registry[Any]:
    """One registry per document; the entry keeps ``doc`` alive, so its id stays its own."""
    entry = _REGISTRIES.get(id(doc))
    if entry is None or entry[0] is not doc:
        resource = DRAFT202012.create_resource(doc)
        entry = _REGISTRIES[id(doc)] = (doc, Registry().with_resource(_BASE_URI, resource))
    return entry[1]


def _problems(doc: dict[str, Any], at: str, value: Any) -> list[str]:
    """What is wrong with ``value`` against the schema at JSON pointer ``at``."""
    validator = Draft202012Validator({"$ref": f"{_BASE_URI}#{at}"}, registry=_registry(doc))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [
        f"  at {'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors
    ]


def validate_schema(doc: dict[str, Any], name: str, value: Any) -> None:
    """Assert that ``value`` matches ``#/components/schemas/<name>``."""
    if name not in doc["components"]["schemas"]:
        raise AssertionError(f"no schema {name!r} in the document")
    problems = _problems(doc, pointer("components", "schemas", name), value)
    if problems:
        raise AssertionError(f"{name}: the value does not match:\n" + "\n".join(problems))


def _check_headers(
    doc: dict[str, Any], response: dict[str, Any], at: str, given: Mapping[str, str], where: str
) -> None:
    """Each documented header: present when required, and matching its schema."""
    lowered = {name.lower(): value for name, value in given.items()}
    for name, raw in response.get("headers", {}).items():
        header, header_at = deref(doc, raw, f"{at}{pointer('headers', name)}")
        value = lowered.get(name.lower())
        if value is None:
            if header.get("required"):
                raise AssertionError(f"{where}: the documented header {name} is missing")
            continue
        problems = _problems(doc, f"{header_at}/schema", value)
        if problems:
            raise AssertionError(f"{where}: header {name}: {value!r}:\n" + "\n".join(problems))


def validate_response(
    doc: dict[str, Any],
    method: str,
    path_template: str,
    status: int,
    body: Any,
    *,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Assert that ``body`` (parsed JSON, or text for a text media type) is what the
    document says ``METHOD path_template`` answers with ``status`` and ``content_type``
    (parameters such as ``charset`` are ignored), and, when ``headers`` are given, that
    they have the documented headers. Raises AssertionError saying what differs.
    """
    response, at = _response(doc, method, path_template, status)
    where = f"{method} {path_template} -> {status}"
    if headers is not None:
        _check_headers(doc, response, at, headers, where)
    content = response.get("content")
    if not content:
        assert body in (None, "", b""), f"{where}: documented without a body, got {body!r}"
        return
    media = content_type.split(";")[0].strip().lower()
    if media not in content:
        raise AssertionError(f"{where}: content type {media} is not documented ({sorted(content)})")
    if "schema" not in content[media]:
        return
    problems = _problems(doc, f"{at}{pointer('content', media, 'schema')}", body)
    if problems:
        raise AssertionError(
            f"{where}: the body does not match its schema:\n" + "\n".join(problems)
        )
