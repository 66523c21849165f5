"""Model families: heuristic prices for unknown ids, and which ids can chat."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooldaemon.pool._builtin import BuiltinModel, load_builtin_table
from pooldaemon.pool._families import (
    FAMILIES,
    Tier,
    family_price,
    family_quote,
    supports_chat_model_id,
)
from pooldaemon.pool._price import PriceQuote

TABLE = load_builtin_table()
TIERS: list[Tier] = [
    tier
    for family in FAMILIES
    for tier in (*family.tiers, *([family.default] if family.default else []))
]


@pytest.mark.parametrize("tier", TIERS, ids=lambda t: f"{t.label}:{t.entry}")
def test_every_tier_refers_to_a_chat_entry_of_the_table(tier: Tier) -> None:
    assert tier.entry in TABLE
    assert TABLE[tier.entry].is_chat


@pytest.mark.parametrize("entry", sorted({tier.entry for tier in TIERS}))
def test_each_tier_entry_is_priced_as_itself(entry: str) -> None:
    """The order of the tiers is right: no earlier, broader tier captures a later one."""
    found = family_price(entry)
    assert found is not None
    assert found[0] == TABLE[entry].price


@pytest.mark.parametrize("model", [m for m in TABLE.values() if m.is_chat], ids=lambda m: m.id)
def test_every_chat_entry_belongs_to_a_family(model: BuiltinModel) -> None:
    assert family_price(model.id) is not None


@pytest.mark.parametrize(
    ("model_id", "label", "price_in", "price_out"),
    [
        # Anthropic: legacy generations keep their price, unknown ones get the current tier.
        ("claude-opus-9", "claude-opus", 4.0, 20.0),
        ("claude-opus-4-5-thinking", "claude-opus", 5.0, 25.0),
        ("claude-opus-4-1-thinking", "claude-opus", 15.0, 75.0),
        ("anthropic--claude-3-opus-relay", "claude-opus", 15.0, 75.0),
        ("claude-sonnet-4-5-thinking", "claude-sonnet", 3.0, 15.0),
        ("relay/claude-3.7-sonnet-thinking", "claude-sonnet", 3.0, 15.0),
        ("claude-sonnet-99-experimental", "claude-sonnet", 2.0, 10.0),
        ("claude-instant-custom", "claude-sonnet", 2.0, 10.0),  # unknown tier: default Sonnet
        ("claude-3-5-haiku-custom", "claude-haiku", 0.8, 4.0),
        ("claude-3-haiku-custom", "claude-haiku", 0.25, 1.25),
        ("claude-haiku-4-5-custom", "claude-haiku", 1.0, 5.0),
        ("claude-haiku-7", "claude-haiku", 0.1, 0.5),
        # OpenAI: mini/nano before the base model.
        ("gpt-4o-mini-search-preview", "gpt-4o-mini", 0.15, 0.6),
        ("gpt-4o-search-preview", "gpt-4o", 2.5, 10.0),
        ("azure/gpt-4.1-nano-deployment", "gpt-4.1-nano", 0.1, 0.4),
        ("gpt-4.1-mini-ft", "gpt-4.1-mini", 0.4, 1.6),
        ("gpt-5-codex", "gpt-5", 1.25, 10.0),
        ("gpt-5.1-codex-mini", "gpt-5-mini", 0.25, 2.0),
        ("gpt-5-nano-custom", "gpt-5-nano", 0.05, 0.4),
        ("gpt-5.2-codex", "gpt-5.2", 1.75, 14.0),
        ("gpt-4-1106-preview", "gpt-4-turbo", 10.0, 30.0),
        ("gpt-4-0613", "gpt-4", 30.0, 60.0),
        ("o3-mini-high", "o3-mini", 1.1, 4.4),
        ("openai/o4-mini-deep-research", "o4-mini", 1.1, 4.4),
        ("o3-deep-research", "o3", 2.0, 8.0),
        ("o1-preview", "o1", 15.0, 60.0),
        # Google: flash-lite before flash, generation 3 before the 2.5 default.
        ("gemini-2.5-flash-lite-custom", "gemini-flash-lite", 0.1, 0.4),
        ("gemini-2.0-flash-lite-exp", "gemini-flash-lite", 0.075, 0.3),
        ("gemini-flash-latest", "gemini-flash", 0.3, 2.5),
        ("gemini-2.5-pro-exp-03-25", "gemini-pro", 1.25, 10.0),
        ("gemini-3-pro-image", "gemini-pro", 2.0, 12.0),
        ("gemini-exp-1206", "gemini-flash", 0.3, 2.5),
        # DeepSeek: reasoner/r1 vs chat/v3.
        ("deepseek-r1-0528", "deepseek-reasoner", 0.28, 0.42),
        ("deepseek-ai/DeepSeek-V3.1", "deepseek-chat", 0.28, 0.42),
        # Mistral.
        ("mistral-large-2407", "mistral-large", 0.5, 1.5),
        ("mistral-medium-3.5", "mistral-medium", 0.4, 2.0),
        ("mistral-small-3.2-24b-instruct", "mistral-small", 0.1, 0.3),
        ("codestral-22b", "codestral", 0.3, 0.9),
        ("ministral-3b-latest", "ministral", 0.04, 0.04),
        ("mistral-7b-instruct", "mistral-medium", 0.4, 2.0),
        # xAI.
        ("grok-4-heavy", "grok-4", 3.0, 15.0),
        ("grok-4.1-fast", "grok-fast", 0.2, 0.5),
        ("grok-3-mini-fast", "grok-3-mini", 0.3, 0.5),
        ("grok-2-1212", "grok-4", 3.0, 15.0),
        # Llama by size, at typical hosted prices.
        ("llama3.1:8b", "llama-8b", 0.18, 0.18),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct", "llama-70b", 0.88, 0.88),
        ("llama-3.2-90b-vision-instruct", "llama-70b", 0.88, 0.88),
        ("llama-3.1-405b-instruct-fp8", "llama-405b", 3.5, 3.5),
        ("llama-4-maverick", "llama-4-maverick", 0.2, 0.6),
        # Qwen and Cohere.
        ("qwen-max-2025-01-25", "qwen-max", 1.6, 6.4),
        ("qwen3-max-preview", "qwen-max", 1.2, 6.0),
        ("qwen2.5-72b-instruct", "qwen-plus", 0.4, 1.2),
        ("qwen3-coder-480b-a35b-instruct", "qwen-coder", 1.0, 5.0),
        ("qwen-turbo-latest", "qwen-turbo", 0.05, 0.2),
        ("command-r-plus-04-2024", "command-r-plus", 2.5, 10.0),
        ("command-r7b-arabic-02-2025", "command-r7b", 0.0375, 0.15),
        ("command-a-reasoning-08-2025", "command-a", 2.5, 10.0),
    ],
)
def test_family_prices(model_id: str, label: str, price_in: float, price_out: float) -> None:
    found = family_price(model_id)
    assert found is not None
    price, got_label = found
    assert (got_label, price.input, price.output) == (label, price_in, price_out)


@pytest.mark.parametrize(
    "model_id",
    [
        "",
        "totally-custom-model",
        "gpt-oss-120b",  # an OpenAI name, but no known tier
        "phi-4",
        "gemma3:27b",
        "text-embedding-3-small",  # not chat: no chat price for it
        "dall-e-3",
        "claude-embed",
        "ollama/nomic-embed-text",
    ],
)
def test_no_family_gives_none(model_id: str) -> None:
    assert family_price(model_id) is None
    assert family_quote(model_id) is None


def test_family_price_is_the_table_price_not_a_copy() -> None:
    found = family_price("claude-sonnet-4-5-thinking")
    assert found is not None
    assert found[0] is TABLE["claude-sonnet-4-5"].price


def test_family_quote_is_a_heuristic_quote() -> None:
    assert family_quote("gpt-4o-mini-custom") == PriceQuote(
        TABLE["gpt-4o-mini"].price, "heuristic", "gpt-4o-mini"
    )


def test_matching_is_case_and_separator_insensitive() -> None:
    assert family_price("Claude Sonnet 4.5 (relay)") == family_price("claude-sonnet-4.5")
    assert family_price("OPENAI/GPT_4O_MINI") == family_price("gpt-4o-mini")


# Which ids can chat ----------------------------------------------------------------


@pytest.mark.parametrize(
    "model_id",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1-nano",
        "gpt-4o-search-preview",
        "gpt-5",
        "gpt-5-codex",
        "o3-mini",
        "o1-pro",
        "gpt-3.5-turbo",
        "chatgpt-4o-latest",
        "claude-sonnet-4-5-20250929",
        "claude-3-5-haiku-latest",
        "gemini-2.5-flash",
        "models/gemini-2.5-pro",
        "gemini-2.5-flash-image",
        "deepseek-chat",
        "deepseek-reasoner",
        "mistral-large-latest",
        "codestral-latest",
        "grok-4",
        "grok-code-fast-1",
        "llama3.2-vision",
        "llama-3.3-70b-versatile",
        "meta-llama/llama-guard-3-8b",
        "qwen2.5-coder:7b",
        "qwen2-audio-7b-instruct",
        "command-r-plus",
        "phi-4",
        "gemma3:27b",
        "my-custom-relay-model",
        "",
    ],
)
def test_chat_models_are_chat(model_id: str) -> None:
    assert supports_chat_model_id(model_id)


@pytest.mark.parametrize(
    "model_id",
    [
        "text-embedding-3-small",
        "text-embedding-ada-002",
        "gemini-embedding-001",
        "models/text-embedding-004",
        "mistral-embed",
        "codestral-embed-2505",
        "embed-english-v3.0",
        "nomic-embed-text",
        "mxbai-embed-large",
        "BAAI/bge-m3",
        "intfloat/multilingual-e5-large",
        "thenlper/gte-large",
        "voyage-3-large",
        "tts-1-hd",
        "gpt-4o-mini-tts",
        "gemini-2.5-flash-preview-tts",
        "whisper-1",
        "distil-whisper-large-v3-en",
        "gpt-4o-transcribe",
        "dall-e-3",
        "gpt-image-1",
        "imagen-4.0-generate-001",
        "stabilityai/stable-diffusion-xl-base-1.0",
        "sdxl-turbo",
        "sd3.5-large",
        "black-forest-labs/FLUX.1-schnell",
        "sora-2",
        "veo-3.0-generate-preview",
        "omni-moderation-latest",
        "text-moderation-stable",
        "rerank-v3.5",
        "jina-reranker-v2-base-multilingual",
        "mistral-ocr-latest",
        "davinci-002",
        "babbage-002",
        "gpt-3.5-turbo-instruct",
        "gpt-4o-realtime-preview",
        "gpt-realtime",
        "gpt-4o-audio-preview",
        "gpt-audio-mini",
        "gemini-2.5-flash-native-audio-preview-09-2025",
        "computer-use-preview",
    ],
)
def test_non_chat_models_are_not_chat(model_id: str) -> None:
    assert not supports_chat_model_id(model_id)


@pytest.mark.parametrize("model", list(TABLE.values()), ids=lambda m: m.id)
def test_chat_verdict_agrees_with_the_table(model: BuiltinModel) -> None:
    assert supports_chat_model_id(model.id) == model.is_chat


# Never raising -------------------------------------------------------------------


@given(st.text(max_size=80))
def test_family_functions_never_raise(model_id: str) -> None:
    found = family_price(model_id)
    assert found is None or found[1]
    assert isinstance(supports_chat_model_id(model_id), bool)


@given(st.from_regex(r"[a-z0-9][a-z0-9.:/_@-]{0,40}", fullmatch=True))
def test_family_functions_never_raise_on_id_like_text(model_id: str) -> None:
    quote = family_quote(model_id)
    assert quote is None or quote.source == "heuristic"
    supports_chat_model_id(model_id)
