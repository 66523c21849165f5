"""Parsing LiteLLM and models.dev price tables, and the guard rail between two fetches."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooldaemon.errors import PoolError
from pooldaemon.pool import Price
from pooldaemon.refresh._price_sources import (
    ParsedPrices,
    PriceSourceError,
    RemoteModel,
    parse_litellm,
    parse_models_dev,
    parse_source,
    price_change_problem,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def _chat(**fields: Any) -> dict[str, Any]:
    return {"litellm_provider": "openai", "mode": "chat", **fields}


# LiteLLM


def test_litellm_sample_prices_per_million_with_limits() -> None:
    parsed = parse_litellm(_fixture("litellm_sample.json"))

    assert parsed.skipped == 0
    assert parsed.models["gpt-4o"] == RemoteModel(
        Price(input=2.5, output=10.0, cache_read=1.25), context_window=128_000, max_output=16_384
    )
    assert parsed.models["claude-3-5-sonnet-20241022"] == RemoteModel(
        Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75),
        context_window=200_000,
        max_output=8192,
    )
    assert parsed.models["gpt-4o-mini"].price == Price(0.15, 0.6, cache_read=0.075)
    assert parsed.models["amazon.nova-2-lite-v1:0"].max_output == 64_000


def test_litellm_keeps_chat_responses_completion_and_leaves_out_the_rest() -> None:
    models = parse_litellm(_fixture("litellm_sample.json")).models

    assert models["o1-pro"].price == Price(input=150.0, output=600.0)  # mode: responses
    assert models["gpt-3.5-turbo-instruct"].price == Price(1.5, 2.0)  # mode: completion
    assert models["ollama/llama3.1"].price.is_free  # priced at zero: kept, free
    for absent in (
        "sample_spec",
        "1024-x-1024/dall-e-2",
        "text-embedding-3-small",
        "omni-moderation-latest",
        "rerank-english-v3.0",
        "whisper-1",
    ):
        assert absent not in models


def test_litellm_bare_aliases_prefer_first_party_and_never_shadow_a_key() -> None:
    models = parse_litellm(_fixture("litellm_sample.json")).models

    # deepseek/deepseek-chat (first party) beats openrouter/deepseek/deepseek-chat
    assert models["deepseek-chat"] is models["deepseek/deepseek-chat"]
    assert models["deepseek-chat"].price.input == 0.27
    # a relay's bare id when nobody else offers it
    assert models["claude-3.5-sonnet"] is models["openrouter/anthropic/claude-3.5-sonnet"]
    assert models["mistral-large-latest"] is models["mistral/mistral-large-latest"]
    # a bare form that is a key of its own keeps its own entry
    assert models["gemini-2.0-flash"].price.input == 0.15  # vertex's, not gemini/'s 0.1
    assert models["gemini/gemini-2.0-flash"].price.input == 0.1
    assert models["gpt-4o"] is not models["azure/gpt-4o"]


def test_litellm_bare_alias_choice_does_not_depend_on_order() -> None:
    entries = {
        "openrouter/mistralai/codestral": _chat(input_cost_per_token=3e-7, litellm_provider="x"),
        "mistral/codestral": _chat(input_cost_per_token=2e-7, litellm_provider="mistral"),
        "bedrock/codestral": _chat(input_cost_per_token=4e-7, litellm_provider="bedrock"),
    }
    forward = parse_litellm(entries).models
    backward = parse_litellm(dict(reversed(entries.items()))).models

    assert forward["codestral"].price.input == backward["codestral"].price.input == 0.2


def test_litellm_relays_only_prefer_the_most_direct_key() -> None:
    entries = {
        "openrouter/vendor/m": _chat(input_cost_per_token=3e-7, litellm_provider="openrouter"),
        "together_ai/m": _chat(input_cost_per_token=5e-7, litellm_provider="together_ai"),
    }
    assert parse_litellm(entries).models["m"].price.input == 0.5


def test_litellm_legacy_max_tokens_is_an_output_limit_only_below_the_context() -> None:
    models = parse_litellm(
        {
            "a": _chat(input_cost_per_token=1e-6, max_input_tokens=8192, max_tokens=4096),
            "b": _chat(input_cost_per_token=1e-6, max_input_tokens=8192, max_tokens=8192),
            "c": _chat(input_cost_per_token=1e-6, max_tokens=4096),
            "d": _chat(input_cost_per_token=1e-6, max_input_tokens="lots", max_output_tokens=-1),
        }
    ).models

    assert (models["a"].context_window, models["a"].max_output) == (8192, 4096)
    assert (models["b"].context_window, models["b"].max_output) == (8192, None)
    assert (models["c"].context_window, models["c"].max_output) == (None, None)
    assert (models["d"].context_window, models["d"].max_output) == (None, None)


def test_litellm_one_price_is_enough_the_other_is_zero() -> None:
    models = parse_litellm(
        {
            "out-only": _chat(output_cost_per_token=2e-6),
            "no-mode": {"input_cost_per_token": 1e-6, "litellm_provider": "mistral"},
            "per-character": _chat(input_cost_per_character=2.5e-7),
        }
    ).models

    assert models["out-only"].price == Price(input=0.0, output=2.0)
    assert models["no-mode"].price == Price(input=1.0)
    assert "per-character" not in models  # no per-token price: not counted as malformed


@pytest.mark.parametrize(
    "entry",
    [
        "not an object",
        ["a", "list"],
        _chat(input_cost_per_token=-1e-6),
        _chat(input_cost_per_token=math.nan),
        _chat(input_cost_per_token=math.inf),
        _chat(input_cost_per_token="2.5e-06"),
        _chat(input_cost_per_token=True),
        _chat(input_cost_per_token=1.0),  # $1M per 1M tokens: absurd
        _chat(input_cost_per_token=10**400),
        _chat(input_cost_per_token=1e-6, cache_read_input_token_cost=-1e-7),
        _chat(input_cost_per_token=1e-6, mode=["chat"]),
    ],
)
def test_litellm_skips_and_counts_a_malformed_entry(entry: object) -> None:
    parsed = parse_litellm({"good": _chat(input_cost_per_token=1e-6), "bad": entry})

    assert set(parsed.models) == {"good"}
    assert parsed.skipped == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"gpt-4o": {}}], "not an array"),
        ("gpt-4o", "not a string"),
        (None, "not null"),
        ({}, "no usable priced model"),
        ({"sample_spec": {"input_cost_per_token": 0.0}}, "no usable priced model"),
        ({"e": _chat(mode="embedding", input_cost_per_token=1e-8)}, "no usable priced model"),
        ({"x": "garbage", "y": 3}, "2 malformed entries skipped"),
    ],
)
def test_litellm_document_of_the_wrong_shape_is_an_error(data: object, message: str) -> None:
    with pytest.raises(PriceSourceError, match=message):
        parse_litellm(data)


# models.dev


def test_models_dev_sample_keys_provider_qualified_ids() -> None:
    parsed = parse_models_dev(_fixture("models_dev_sample.json"))

    assert parsed.skipped == 0
    assert parsed.models["anthropic/claude-3-5-sonnet-20241022"] == RemoteModel(
        Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75),
        context_window=200_000,
        max_output=8192,
    )
    assert parsed.models["openai/gpt-4o"] == RemoteModel(
        Price(2.5, 10.0, cache_read=1.25), context_window=128_000, max_output=16_384
    )
    assert parsed.models["openrouter/anthropic/claude-3.5-sonnet"].price.input == 6.0
    assert parsed.models["openrouter/deepseek/deepseek-r1:free"].price.is_free
    assert parsed.models["groq/llama-3.3-70b-versatile"].price == Price(0.59, 0.79)


def test_models_dev_leaves_out_unpriced_and_non_text_models() -> None:
    models = parse_models_dev(_fixture("models_dev_sample.json")).models

    assert "openai/gpt-image-1" not in models  # image output
    assert "gpt-image-1" not in models
    assert "lmstudio/qwen/qwen3-30b-a3b-2507" not in models  # no cost
    assert "qwen/qwen3-30b-a3b-2507" not in models


def test_models_dev_bare_ids_prefer_the_first_party_vendor() -> None:
    models = parse_models_dev(_fixture("models_dev_sample.json")).models

    # azure comes first in the document, openai wins
    assert models["gpt-4o-mini"] is models["openai/gpt-4o-mini"]
    assert models["gpt-4o-mini"].price.input == 0.15
    assert models["azure/gpt-4o-mini"].price.input == 0.165
    assert models["claude-3-5-sonnet-20241022"] is models["anthropic/claude-3-5-sonnet-20241022"]
    assert models["deepseek-chat"] is models["deepseek/deepseek-chat"]
    # relays' ids when no vendor lists them
    assert models["anthropic/claude-3.5-sonnet"] is models["openrouter/anthropic/claude-3.5-sonnet"]
    assert models["llama-3.3-70b-versatile"] is models["groq/llama-3.3-70b-versatile"]
    # openrouter's bare "openai/gpt-4o" is also openai's qualified key: the qualified key wins
    assert models["openai/gpt-4o"].price.cache_read == 1.25
    assert models["gpt-4o"] is models["openai/gpt-4o"]


def test_models_dev_bare_id_between_relays_does_not_depend_on_order() -> None:
    def provider(price: float) -> dict[str, Any]:
        return {"models": {"llama-x": {"id": "llama-x", "cost": {"input": price, "output": 1}}}}

    document = {"togetherai": provider(0.9), "fireworks-ai": provider(0.8)}
    forward = parse_models_dev(document).models
    backward = parse_models_dev(dict(reversed(document.items()))).models

    assert forward["llama-x"].price.input == backward["llama-x"].price.input == 0.8


def test_models_dev_skips_and_counts_malformed_providers_and_models() -> None:
    good = {"cost": {"input": 1, "output": 2}, "limit": {"context": 1000, "output": 100}}
    parsed = parse_models_dev(
        {
            "ok": {
                "models": {
                    "good": good,
                    "string-cost": {"cost": "cheap"},
                    "negative": {"cost": {"input": -1, "output": 2}},
                    "not-an-object": 7,
                    "no-limit": {"cost": {"input": 1}, "limit": "big"},
                }
            },
            "no-models": {"id": "no-models"},
            "not-a-provider": "nope",
        }
    )

    assert parsed.skipped == 5
    assert parsed.models["ok/good"] == RemoteModel(Price(1.0, 2.0), 1000, 100)
    assert parsed.models["good"] is parsed.models["ok/good"]
    assert parsed.models["ok/no-limit"] == RemoteModel(Price(1.0))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "not an array"),
        ({}, "no usable priced model"),
        ({"openai": {"models": {}}}, "no usable priced model"),
        ({"openai": "x"}, "1 malformed entries skipped"),
    ],
)
def test_models_dev_document_of_the_wrong_shape_is_an_error(data: object, message: str) -> None:
    with pytest.raises(PriceSourceError, match=message):
        parse_models_dev(data)


# parse_source


def test_parse_source_decodes_both_formats() -> None:
    litellm = parse_source("litellm", (FIXTURES / "litellm_sample.json").read_bytes())
    models_dev = parse_source("models_dev", (FIXTURES / "models_dev_sample.json").read_bytes())

    assert isinstance(litellm, ParsedPrices)
    assert "gpt-4o" in litellm.models
    assert "openai/gpt-4o" in models_dev.models


@pytest.mark.parametrize(
    ("fmt", "raw", "message"),
    [
        ("litellm", b"<html>502 Bad Gateway</html>", "litellm source is not valid JSON"),
        ("models_dev", b'{"openai": ', "models_dev source is not valid JSON"),
        ("litellm", b"\xff\xfe{}", "not valid JSON"),
        ("litellm", b"[" * 100_000, "not valid JSON"),
        ("litellm", b"[]", "not an array"),
        ("csv", b"{}", "unknown pricing source format 'csv'"),
    ],
)
def test_parse_source_failures_are_price_source_errors(fmt: str, raw: bytes, message: str) -> None:
    with pytest.raises(PriceSourceError, match=message) as caught:
        parse_source(fmt, raw)
    assert isinstance(caught.value, PoolError)
    assert isinstance(caught.value, ValueError)


# the guard rail


def _table(**prices: Price) -> dict[str, RemoteModel]:
    return {key.replace("_", "-"): RemoteModel(price) for key, price in prices.items()}


BASE = _table(
    gpt_4o=Price(2.5, 10.0, cache_read=1.25),
    claude=Price(3.0, 15.0, cache_read=0.3, cache_write=3.75),
    mini=Price(0.15, 0.6),
    free=Price(0.0, 0.0),
)


def test_guard_accepts_unchanged_and_moderate_changes() -> None:
    assert price_change_problem(BASE, BASE, 10.0) is None
    moved = {**BASE, **_table(claude=Price(3.0, 15.0, cache_read=3.0, cache_write=0.375))}
    assert price_change_problem(BASE, moved, 10.0) is None  # exactly 10x up and down


def test_guard_rejects_a_100x_change_and_names_the_model() -> None:
    broken = {**BASE, **_table(gpt_4o=Price(250.0, 10.0, cache_read=1.25))}

    problem = price_change_problem(BASE, broken, 10.0)

    assert problem is not None
    assert problem.startswith("gpt-4o: input price moved up 100x (2.5 -> 250")
    assert "more than max_change 10" in problem


def test_guard_names_the_worst_model_and_sees_drops_too() -> None:
    broken = {
        **BASE,
        **_table(mini=Price(0.15, 0.006), claude=Price(3.0, 15.0, 0.3, 3.75 * 20)),
    }

    problem = price_change_problem(BASE, broken, 10.0)

    assert problem is not None
    assert problem.startswith("mini: output price moved down 100x")


def test_guard_ignores_zero_on_either_side_and_unknown_components() -> None:
    changed = {
        **BASE,
        **_table(
            free=Price(1.0, 2.0),  # a free model gets a price
            mini=Price(0.0, 0.6),  # one component drops to zero
            claude=Price(3.0, 15.0),  # cache prices now unknown
        ),
    }
    assert price_change_problem(BASE, changed, 10.0) is None


def test_guard_rejects_most_priced_models_turning_free() -> None:
    zeroed = {**BASE, **_table(gpt_4o=Price(), claude=Price())}

    problem = price_change_problem(BASE, zeroed, 10.0)

    assert problem == "2 of 3 priced models became free (for example claude, gpt-4o)"
    one = {**BASE, **_table(gpt_4o=Price())}
    assert price_change_problem(BASE, one, 10.0) is None


def test_guard_rejects_a_document_that_lost_most_models() -> None:
    old = {f"m{i}": RemoteModel(Price(1.0, 2.0)) for i in range(10)}
    half = {f"m{i}": RemoteModel(Price(1.0, 2.0)) for i in range(5)}
    fewer = {f"m{i}": RemoteModel(Price(1.0, 2.0)) for i in range(4)}

    assert price_change_problem(old, half, 10.0) is None
    assert price_change_problem(old, fewer, 10.0) == (
        "the source now lists 4 models, fewer than half of the 10 it listed before"
    )
    assert price_change_problem({}, fewer, 10.0) is None  # first fetch: nothing to compare


def test_guard_compares_only_models_in_both() -> None:
    renamed = {("new-" + key): model for key, model in BASE.items()}
    assert price_change_problem(BASE, {**BASE, **renamed}, 10.0) is None


def test_guard_on_real_tables_rejects_one_entry_moved_100x() -> None:
    old = parse_litellm(_fixture("litellm_sample.json")).models
    document = _fixture("litellm_sample.json")
    document["gpt-4o-mini"]["output_cost_per_token"] *= 100
    new = parse_litellm(document).models

    problem = price_change_problem(old, new, 10.0)

    assert problem is not None
    assert problem.startswith("gpt-4o-mini: output price moved up 100x")


_amount = st.floats(min_value=1e-6, max_value=1000.0)


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.builds(Price, _amount, _amount, st.none() | _amount, st.none() | _amount),
        min_size=1,
        max_size=20,
    ),
    st.floats(min_value=1.5, max_value=1000.0),
)
def test_guard_properties(prices: dict[str, Price], factor: float) -> None:
    old = {key: RemoteModel(price) for key, price in prices.items()}
    assert price_change_problem(old, old, factor) is None

    scale = factor * 1.01
    scaled = {
        key: RemoteModel(Price(p.input * scale, p.output, p.cache_read, p.cache_write))
        for key, p in prices.items()
    }
    assert price_change_problem(old, scaled, factor) is not None
    assert price_change_problem(scaled, old, factor) is not None
