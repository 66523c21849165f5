"""The JSON Schema of the YAML, for editors (yaml-language-server) and CI checks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from pooldaemon.spec._pool import PoolSpec
from pooldaemon.spec._types import format_duration

__all__ = ["SCHEMA_ID", "pool_json_schema", "pool_json_schema_text"]

SCHEMA_ID = "https://pooldaemon.dev/schemas/pool.schema.json"


class _YamlSchema(GenerateJsonSchema):
    """Defaults as a user writes them: durations as ``30s``, not ISO 8601 ``PT30S``."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def pool_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of ``PoolSpec`` as written in YAML."""
    schema = PoolSpec.model_json_schema(mode="validation", schema_generator=_YamlSchema)
    key = schema["$defs"]["KeySpec"]
    # Exactly one source per key; pydantic cannot express this itself.
    key["oneOf"] = [{"required": [name]} for name in ("env", "file", "credential", "value")]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def pool_json_schema_text() -> str:
    """The schema as the checked-in file holds it (stable key order, trailing newline)."""
    return json.dumps(pool_json_schema(), indent=2, sort_keys=True) + "\n"
