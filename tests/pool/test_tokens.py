"""Usage normalization and cost, checked by hand against real provider payloads."""

from __future__ import annotations

import pytest

from pooldaemon.pool import (
    Price,
    Usage,
    cost_usd,
    usage_from_anthropic,
    usage_from_gemini,
    usage_from_ollama,
    usage_from_openai,
    usage_from_responses,
)
from pooldaemon.pool._tokens import MAX_TOKENS

# Chat Completions: prompt_tokens includes cached_tokens; completion includes reasoning.
OPENAI = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0},
}
RESPONSES = {
    "input_tokens": 328,
    "input_tokens_details": {"cached_tokens": 128},
    "output_tokens": 52,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 380,
}
# Anthropic: input_tokens excludes cache reads and writes.
ANTHROPIC = {
    "input_tokens": 21,
    "cache_creation_input_tokens": 188086,
    "cache_read_input_tokens": 0,
    "output_tokens": 393,
}
DEEPSEEK = {
    "prompt_tokens": 1000,
    "completion_tokens": 50,
    "prompt_cache_hit_tokens": 600,
    "prompt_cache_miss_tokens": 400,
}
# Gemini: promptTokenCount includes cachedContentTokenCount; candidates exclude thoughts.
GEMINI = {
    "promptTokenCount": 1200,
    "cachedContentTokenCount": 1000,
    "candidatesTokenCount": 80,
    "thoughtsTokenCount": 420,
    "totalTokenCount": 1700,
}
OLLAMA = {"model": "llama3.2", "done": True, "prompt_eval_count": 26, "eval_count": 298}


def test_openai() -> None:
    assert usage_from_openai(OPENAI) == Usage(input=86, output=300, cache_read=1920, reasoning=192)


def test_responses() -> None:
    assert usage_from_responses(RESPONSES) == Usage(input=200, output=52, cache_read=128)


def test_anthropic() -> None:
    assert usage_from_anthropic(ANTHROPIC) == Usage(input=21, output=393, cache_write=188086)


def test_deepseek() -> None:
    assert usage_from_openai(DEEPSEEK) == Usage(input=400, output=50, cache_read=600)


def test_gemini() -> None:
    assert usage_from_gemini(GEMINI) == Usage(input=200, output=500, cache_read=1000, reasoning=420)


def test_ollama() -> None:
    assert usage_from_ollama(OLLAMA) == Usage(input=26, output=298)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        {"prompt_tokens": "12"},
        {"prompt_tokens": -5},
        {"prompt_tokens": True},
        [],
        {"prompt_tokens": float("nan")},
        {"prompt_tokens": float("-inf")},
    ],
)
def test_malformed_usage_counts_nothing(bad: object) -> None:
    assert usage_from_openai(bad) == Usage()  # type: ignore[arg-type]
    assert usage_from_anthropic(bad) == Usage()  # type: ignore[arg-type]
    assert usage_from_gemini(bad) == Usage()  # type: ignore[arg-type]


@pytest.mark.parametrize("absurd", [2**63, 10**30, 1e300, float("inf")])
def test_absurd_counts_are_clamped(absurd: float) -> None:
    """An upstream claiming 2**63 tokens must not overflow the usage store's sums."""
    usage = usage_from_openai({"prompt_tokens": absurd, "completion_tokens": absurd})
    assert usage == Usage(input=MAX_TOKENS, output=MAX_TOKENS)


def test_cached_more_than_prompt_is_clamped() -> None:
    usage = usage_from_openai({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 50}})
    assert usage == Usage(input=0, cache_read=10)


# Hand-computed costs (USD per 1M tokens).
def test_cost_openai_gpt_4o() -> None:
    # 86 x 2.50 + 1920 x 1.25 + 300 x 10.00 = 215 + 2400 + 3000 = 5615 -> $0.005615
    price = Price(input=2.5, output=10.0, cache_read=1.25)
    assert cost_usd(usage_from_openai(OPENAI), price) == pytest.approx(0.005615)


def test_cost_anthropic_sonnet_with_cache_write() -> None:
    # 21 x 3 + 188086 x 3.75 + 393 x 15 = 63 + 705322.5 + 5895 = 711280.5 -> $0.7112805
    price = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
    assert cost_usd(usage_from_anthropic(ANTHROPIC), price) == pytest.approx(0.7112805)


def test_cost_gemini_thoughts_billed_as_output_once() -> None:
    # 200 x 0.30 + 1000 x 0.075 + 500 x 2.50 = 60 + 75 + 1250 = 1385 -> $0.001385
    price = Price(input=0.3, output=2.5, cache_read=0.075)
    assert cost_usd(usage_from_gemini(GEMINI), price) == pytest.approx(0.001385)


def test_cost_unset_cache_prices_fall_back_to_input_and_per_request() -> None:
    usage = Usage(input=1000, cache_read=1000, cache_write=1000, output=0)
    assert cost_usd(usage, Price(input=1.0)) == pytest.approx(0.003)
    assert cost_usd(Usage(), Price(per_request=0.04)) == pytest.approx(0.04)
    assert cost_usd(Usage(requests=0), Price(per_request=0.04)) == 0.0


def test_usage_adds() -> None:
    total = Usage(1, 2, 3, 4, 1) + Usage(10, 20, 30, 40, 5)
    assert total == Usage(11, 22, 33, 44, 6, requests=2)
    assert total.total == 11 + 22 + 33 + 44
