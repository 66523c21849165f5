from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pooldaemon.spec import LoadedSpec, load_spec_bytes, load_spec_file


@pytest.fixture
def load(tmp_path: Path) -> Callable[..., LoadedSpec]:
    """Write YAML text to a real file and load it (env is empty unless given)."""

    def _load(text: str, env: dict[str, str] | None = None) -> LoadedSpec:
        path = tmp_path / "pool.yaml"
        path.write_text(text, encoding="utf-8")
        return load_spec_file(path, env={} if env is None else env)

    return _load


@pytest.fixture
def load_bytes() -> Callable[[bytes], LoadedSpec]:
    return lambda raw: load_spec_bytes(raw, "mem.yaml", env={})
