"""The JSON Schema of the YAML, for editors (yaml-language-server) and CI checks."""

from __future__ import annotations

import json
from typing import Any

from pooldaemon.spec._pool import PoolSpec

__all__ = ["SCHEMA_ID", "pool_json_schema", "pool_json_schema_text"]

SCHEMA_ID = "https://pooldaemon.dev/schemas/pool.schema.json"


def pool_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``PoolSpec`` as written in YAML."""
    schema = PoolSpec.model_json_schema(mode="validation")
    key = schema["$defs"]["KeySpec"]
    # Exactly one source per key; pydantic cannot express this itself.
    key["oneOf"] = [{"required": [name]} for name in ("env", "file", "credential", "value")]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def pool_json_schema_text() -> str:
    """The schema as the checked-in file holds it (stable key order, trailing newline)."""
    return json.dumps(pool_json_schema(), indent=2, sort_keys=True) + "\n"
