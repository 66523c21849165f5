"""The built-in model table: the data file's facts, validation, and normalized lookup."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooldaemon.errors import PoolError
from pooldaemon.pool._builtin import (
    CAPABILITIES,
    BuiltinModel,
    BuiltinTable,
    BuiltinTableError,
    load_builtin_table,
    parse_builtin_table,
)
from pooldaemon.pool._price import Price, PriceQuote

TABLE = load_builtin_table()
ENTRIES = list(TABLE.values())
AS_OF = re.compile(r"20\d\d-(0[1-9]|1[0-2])")


def _raw_document() -> dict[str, Any]:
    path = resources.files("pooldaemon") / "data" / "models.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


# The table's facts ---------------------------------------------------------------


def test_table_is_large_and_diverse() -> None:
    assert len(TABLE) >= 45
    assert len(TABLE.vendors) >= 7
    assert {"openai", "anthropic", "google", "deepseek", "mistral", "xai"} <= TABLE.vendors
    assert sum(1 for model in ENTRIES if not model.is_chat) >= 5  # embeddings, images, ...


def test_document_has_a_note_and_loads_once() -> None:
    assert "per 1M tokens" in _raw_document()["note"]
    assert load_builtin_table() is TABLE


@pytest.mark.parametrize("model", ENTRIES, ids=lambda m: m.id)
def test_every_entry_is_sourced_dated_and_sane(model: BuiltinModel) -> None:
    assert model.source.startswith("https://")
    assert AS_OF.fullmatch(model.as_of)
    assert model.id == model.id.lower()
    assert model.capabilities <= CAPABILITIES
    price = model.price
    for value in (price.input, price.output, price.cache_read, price.cache_write):
        assert value is None or value >= 0
    assert price.per_request >= 0
    if price.cache_read is not None:
        assert price.cache_read <= price.input
    if model.is_chat:
        assert model.context_window is not None
        assert model.context_window >= 8192
        assert price.input > 0
        assert price.output >= price.input  # no vendor charges less for output
    if model.max_output is not None and model.context_window is not None:
        assert model.max_output <= model.context_window


@pytest.mark.parametrize(
    "model", [m for m in ENTRIES if m.vendor == "anthropic"], ids=lambda m: m.id
)
def test_anthropic_cache_write_is_the_five_minute_price(model: BuiltinModel) -> None:
    assert model.price.cache_write == pytest.approx(model.price.input * 1.25)
    assert model.price.cache_read is not None


@pytest.mark.parametrize(
    ("model_id", "price"),
    [
        # Hand-checked against the vendors' pricing pages (see each entry's as_of).
        ("gpt-4o", Price(2.5, 10.0, 1.25)),
        ("gpt-4o-mini", Price(0.15, 0.6, 0.075)),
        ("gpt-4.1-nano", Price(0.1, 0.4, 0.025)),
        ("o3", Price(2.0, 8.0, 0.5)),
        ("o4-mini", Price(1.1, 4.4, 0.275)),
        ("gpt-5", Price(1.25, 10.0, 0.125)),
        ("gpt-5-nano", Price(0.05, 0.4, 0.005)),
        ("claude-sonnet-4-5", Price(3.0, 15.0, 0.3, 3.75)),
        ("claude-opus-4-1", Price(15.0, 75.0, 1.5, 18.75)),
        ("claude-haiku-4-5", Price(1.0, 5.0, 0.1, 1.25)),
        ("claude-3-5-haiku", Price(0.8, 4.0, 0.08, 1.0)),
        ("gemini-2.5-pro", Price(1.25, 10.0, 0.125)),
        ("gemini-2.5-flash", Price(0.3, 2.5, 0.03)),
        ("gemini-2.5-flash-lite", Price(0.1, 0.4, 0.01)),
        ("deepseek-chat", Price(0.28, 0.42, 0.028)),
        ("grok-3-mini", Price(0.3, 0.5, 0.075)),
        ("dall-e-3", Price(per_request=0.04)),
        ("text-embedding-3-small", Price(0.02)),
    ],
)
def test_known_prices(model_id: str, price: Price) -> None:
    assert TABLE[model_id].price == price


def test_media_entries_price_images_and_embeddings() -> None:
    assert "embeddings" in TABLE["text-embedding-3-large"].capabilities
    assert "image_generation" in TABLE["gpt-image-1"].capabilities
    assert TABLE["imagen-4.0-generate-001"].price.per_request > 0
    assert TABLE["omni-moderation-latest"].price.is_free


# Lookup --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("  gpt-4o-mini ", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # the exact id beats normalization
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("openai/gpt-5-mini", "gpt-5-mini"),
        ("gpt-5.4-mini-2026-03-17", "gpt-5.4-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-5-haiku@20241022", "claude-3-5-haiku"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("anthropic/claude-3.7-sonnet:beta", "claude-3-7-sonnet"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("google/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
        ("gemini-3-pro-preview", "gemini-3-pro-preview"),
        ("deepseek/deepseek-chat", "deepseek-chat"),
        ("deepseek-reasoner", "deepseek-reasoner"),
        ("meta-llama/llama-3.3-70b-instruct", "llama-3.3-70b-instruct"),
        ("meta-llama/llama-3.3-70b-instruct:free", "llama-3.3-70b-instruct"),
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b-instruct"),
        ("llama-3.3-70b-versatile", "llama-3.3-70b-versatile"),
        ("mistral-large-latest", "mistral-large-2512"),
        ("mistral-large-2411", "mistral-large-2411"),
        ("mistralai/mistral-small-2503", "mistral-small-2506"),
        ("codestral-latest", "codestral-2508"),
        ("x-ai/grok-4", "grok-4-0709"),
        ("grok-3-latest", "grok-3"),
        ("command-r", "command-r-08-2024"),
        ("cohere/command-a-03-2025", "command-a-03-2025"),
        ("qwen/qwen-max", "qwen-max"),
        ("omni-moderation-2024-09-26", "omni-moderation-latest"),
    ],
)
def test_lookup_exact_and_normalized(model_id: str, expected: str) -> None:
    found = TABLE.lookup(model_id)
    assert found is not None
    assert found.id == expected


@pytest.mark.parametrize(
    "model_id",
    [
        "",
        "   ",
        "/",
        "models/",
        ":free",
        "gpt-7-ultra",
        "my-local-model",
        "llama3.2",
        "claude",
        "gpt-4o-audio-preview",  # stripping "-preview" must not reach gpt-4o
        "gpt-4o-mini-tts",
        "gpt-4o-realtime-preview-2024-12-17",
        "anthropic.",
        "x" * 10_000,
    ],
)
def test_unknown_ids_give_none(model_id: str) -> None:
    assert TABLE.lookup(model_id) is None
    assert TABLE.quote(model_id) is None


def test_dated_snapshot_with_its_own_price_is_not_the_alias() -> None:
    assert TABLE["gpt-4o-2024-05-13"].price != TABLE["gpt-4o"].price


def test_quote_names_the_entry() -> None:
    assert TABLE.quote("openai/gpt-4o-2024-08-06") == PriceQuote(
        TABLE["gpt-4o"].price, "builtin", "gpt-4o"
    )


def test_table_is_an_immutable_mapping() -> None:
    assert "gpt-4o" in TABLE
    assert "openai/gpt-4o" not in TABLE  # the mapping is exact; lookup normalizes
    assert len(list(TABLE)) == len(TABLE)
    with pytest.raises(AttributeError):
        TABLE._models = {}
    with pytest.raises(TypeError):
        TABLE["x"] = TABLE["gpt-4o"]  # type: ignore[index]


@given(st.text(max_size=80))
def test_lookup_never_raises_on_text(model_id: str) -> None:
    found = TABLE.lookup(model_id)
    assert found is None or found.id in TABLE


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,40}", fullmatch=True))
def test_lookup_never_raises_on_id_like_text(model_id: str) -> None:
    TABLE.lookup(model_id)
    TABLE.quote(model_id)


# Validation ----------------------------------------------------------------------


_DROP = object()


def _entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "m1",
        "vendor": "acme",
        "input": 1.0,
        "output": 2.0,
        "cache_read": None,
        "cache_write": None,
        "per_request": 0,
        "context_window": 8192,
        "max_output": None,
        "capabilities": ["chat"],
        "source": "https://acme.example/pricing",
        "as_of": "2025-08",
    }
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not _DROP}


def test_the_shipped_document_round_trips() -> None:
    table = parse_builtin_table(copy.deepcopy(_raw_document()))
    assert isinstance(table, BuiltinTable)
    assert dict(table) == dict(TABLE)


def test_minimal_document_parses() -> None:
    table = parse_builtin_table({"models": [_entry(aliases=["m1-alias"])]})
    assert table.lookup("M1-ALIAS") is table["m1"]
    assert table["m1"].price == Price(1.0, 2.0)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry(source=_DROP), "missing fields ['source']"),
        (_entry(source="http://acme.example"), "'source'"),
        (_entry(as_of="2025-13"), "'as_of'"),
        (_entry(as_of="Aug 2025"), "'as_of'"),
        (_entry(input=-1), "'input'"),
        (_entry(output="2"), "'output'"),
        (_entry(input=True), "'input'"),
        (_entry(cache_read=float("nan")), "'cache_read'"),
        (_entry(context_window=0), "'context_window'"),
        (_entry(max_output=1.5), "'max_output'"),
        (_entry(capabilities=["chat", "telepathy"]), "'capabilities'"),
        (_entry(capabilities=[]), "'capabilities'"),
        (_entry(vendor="ACME"), "'vendor'"),
        (_entry(aliases="m1b"), "'aliases'"),
        (_entry(price=1), "unknown fields ['price']"),
    ],
)
def test_bad_entries_are_named(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(BuiltinTableError) as caught:
        parse_builtin_table({"models": [_entry(id="ok"), entry]}, source="t.json")
    text = str(caught.value)
    assert "t.json: models[1] ('m1')" in text
    assert message in text


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "expected an object"),
        ({"models": {}}, "expected an object"),
        ({"models": [], "extra": 1}, "unknown top-level keys"),
        ({"models": [1]}, "models[0]: expected an object"),
        ({"models": [_entry(id="")]}, "field 'id'"),
        ({"models": [_entry(), _entry()]}, "duplicate model id 'm1'"),
        ({"models": [_entry(), _entry(id="m2", aliases=["M1"])]}, "alias 'M1' is also 'm1'"),
    ],
)
def test_bad_documents_are_refused(document: object, message: str) -> None:
    with pytest.raises(BuiltinTableError, match=re.escape(message)):
        parse_builtin_table(document)


def test_error_is_a_pool_error_and_a_value_error() -> None:
    assert issubclass(BuiltinTableError, PoolError)
    assert issubclass(BuiltinTableError, ValueError)
