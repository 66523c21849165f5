"""Catalogs and detections kept in state_dir: round trips, modes, damaged files."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from pooldaemon.pool import ModelInfo
from pooldaemon.refresh import (
    CatalogResult,
    Detection,
    StoredCatalog,
    StoredEndpoint,
    load_catalogs,
    load_endpoints,
    model_from_json,
    model_to_json,
    needs_detection,
    save_catalogs,
    save_endpoints,
)
from pooldaemon.refresh._catalog_store import CATALOGS_FILE, ENDPOINTS_FILE
from tests.refresh.fake_catalogs import provider_spec

GPT = ModelInfo("gpt-4o", "GPT-4o", 128000, 16384, frozenset({"chat", "vision"}))
CUSTOM = ModelInfo("my-llm")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_model_json_round_trip() -> None:
    for model in (GPT, CUSTOM, ModelInfo("x", chat=False, capabilities=frozenset())):
        assert model_from_json(json.loads(json.dumps(model_to_json(model)))) == model
    assert model_to_json(GPT)["capabilities"] == ["chat", "vision"]


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"name": "no id"},
        {"id": ""},
        {"id": "x", "context_window": -1},
        {"id": "x", "context_window": True},
        {"id": "x", "capabilities": "chat"},
        {"id": "x", "chat": "yes"},
    ],
)
def test_model_from_json_rejects(obj: object) -> None:
    with pytest.raises(ValueError):
        model_from_json(obj)


def test_catalogs_round_trip_and_mode(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = os.umask(0o022)
    try:
        catalogs = {
            "openai": StoredCatalog(
                (GPT, CUSTOM), 1700000000.5, "https://api.openai.com/v1", frozenset({"my-llm"})
            ),
            "relay": StoredCatalog((), 1700000001.0, "https://r.example/v1", error="HTTP 500"),
        }
        save_catalogs(state, catalogs)
    finally:
        os.umask(old)
    assert load_catalogs(state) == catalogs
    assert _mode(state / CATALOGS_FILE) == 0o600
    assert _mode(state) == 0o700


def test_endpoints_round_trip_and_mode(tmp_path: Path) -> None:
    det = Detection("anthropic", "detected", "https://alt.example", 1700000000.0)
    endpoints = {"relay": StoredEndpoint.from_detection("https://relay.example/", det)}
    save_endpoints(tmp_path, endpoints)
    loaded = load_endpoints(tmp_path)
    assert loaded == endpoints
    assert loaded["relay"].configured_base_url == "https://relay.example"
    assert _mode(tmp_path / ENDPOINTS_FILE) == 0o600


def test_missing_files_are_empty(tmp_path: Path) -> None:
    assert load_catalogs(tmp_path / "nowhere") == {}
    assert load_endpoints(tmp_path) == {}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"version": 2, "providers": {}}',
        b'{"version": 1, "providers": []}',
        b"null",
    ],
)
def test_damaged_file_is_empty_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    (tmp_path / CATALOGS_FILE).write_bytes(content)
    (tmp_path / ENDPOINTS_FILE).write_bytes(content)
    with caplog.at_level(logging.WARNING, "pooldaemon.refresh"):
        assert load_catalogs(tmp_path) == {}
        assert load_endpoints(tmp_path) == {}
    if content != b"null":
        assert len(caplog.records) == 2
        assert CATALOGS_FILE in caplog.records[0].getMessage()


def test_damaged_entries_are_dropped_one_by_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_catalogs(tmp_path, {"good": StoredCatalog((GPT,), 1.0, "https://a.example")})
    data = json.loads((tmp_path / CATALOGS_FILE).read_text())
    data["providers"]["bad"] = {"models": [{"id": 3}], "fetched_at": 1, "base_url": "x"}
    data["providers"]["worse"] = "text"
    data["providers"]["nan"] = {"models": [], "fetched_at": "soon", "base_url": "x"}
    (tmp_path / CATALOGS_FILE).write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, "pooldaemon.refresh"):
        assert list(load_catalogs(tmp_path)) == ["good"]
    assert {r.getMessage().split("provider=")[1].split()[0] for r in caplog.records} == {
        "bad",
        "worse",
        "nan",
    }


def test_unreadable_path_is_empty(tmp_path: Path) -> None:
    (tmp_path / ENDPOINTS_FILE).mkdir()  # a directory where the file should be
    assert load_endpoints(tmp_path) == {}


def test_needs_detection() -> None:
    spec = provider_spec(format="auto", base_url="https://relay.example/v1")
    det = Detection("openai", "detected", "https://relay.example/v1", 1.0)
    stored = StoredEndpoint.from_detection("https://relay.example/v1", det)
    assert needs_detection(None, spec)
    assert not needs_detection(stored, spec)
    moved = provider_spec(format="auto", base_url="https://elsewhere.example/v1")
    assert needs_detection(stored, moved)


def test_stored_catalog_after_results() -> None:
    ok = CatalogResult("p", (GPT, CUSTOM), None, "https://a.example", 10.0, 3)
    stored = StoredCatalog.from_result(ok)
    assert stored == StoredCatalog((GPT, CUSTOM), 10.0, "https://a.example")
    marked = StoredCatalog(stored.models, 10.0, stored.base_url, frozenset({"my-llm", "gpt-4o"}))

    error = "catalog of provider 'p': HTTP 500"
    failed = CatalogResult("p", None, error, "https://a.example", 20.0, 0)
    kept = marked.updated(failed)
    assert (kept.models, kept.fetched_at, kept.error) == ((GPT, CUSTOM), 10.0, failed.error)
    assert kept.unavailable == marked.unavailable

    fresh = CatalogResult("p", (GPT,), None, "https://b.example", 30.0, 1)
    renewed = kept.updated(fresh)
    assert renewed == StoredCatalog((GPT,), 30.0, "https://b.example", frozenset({"gpt-4o"}))
