"""The checked-in JSON Schema matches the models, and every shipped config passes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from pooldaemon.spec import pool_json_schema
from pooldaemon.spec._schema import pool_json_schema_text

ROOT = Path(__file__).parents[2]
SCHEMA_FILE = ROOT / "schemas" / "pool.schema.json"
CONFIGS = [ROOT / "config" / "pool.yaml", *sorted((ROOT / "config" / "examples").glob("*.yaml"))]


def _yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_checked_in_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == pool_json_schema_text(), (
        "schemas/pool.schema.json is stale: run `make schema`"
    )


def test_there_are_examples() -> None:
    names = {p.name for p in CONFIGS}
    assert {"pool.yaml", "home-nas.yaml", "team.yaml", "cost-saver.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_configs_validate_against_schema(validator: Draft202012Validator, path: Path) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_yaml(path))]
    assert not errors


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_configs_point_editors_at_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix)
    assert (path.parent / first.removeprefix(prefix)).resolve() == SCHEMA_FILE.resolve()


@pytest.mark.parametrize(
    "doc",
    [
        {"version": 1, "providers": [{"id": "p", "timout": "5s"}]},
        {"version": 1, "routing": {"mode": "clod"}},
        {"version": 1, "cooldown": {"initial": "30sec"}},
        {"version": 1, "cooldown": {"initial": 30}},
        {"version": 1, "providers": [{"id": "Open AI"}]},
        {"version": 1, "providers": [{"id": "p", "keys": [{"env": "A", "file": "/k"}]}]},
        {"version": 1, "providers": [{"id": "p", "keys": [{"label": "x"}]}]},
        {"version": 2},
        {},
    ],
)
def test_schema_catches_mistakes_in_the_editor(
    validator: Draft202012Validator, doc: dict[str, Any]
) -> None:
    assert list(validator.iter_errors(doc))


def test_schema_documents_fields() -> None:
    provider = pool_json_schema()["$defs"]["ProviderSpec"]["properties"]
    assert "description" in provider["priority"]
    assert provider["timeout"]["default"] == "10m"


def test_defaults_are_written_as_a_user_writes_them(validator: Draft202012Validator) -> None:
    """Editors offer schema defaults; each must be accepted by the loader too."""
    from pooldaemon.spec import PoolSpec, parse_duration

    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("default"), str) and "pattern" in node:
                found.append(node["default"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(pool_json_schema())
    assert found
    for text in found:
        parse_duration(text)
    defaults = PoolSpec(version=1).model_dump(mode="json", exclude_none=True)
    assert not list(validator.iter_errors(defaults))
