"""Token usage as each provider reports it, normalized so nothing is counted twice.

How the upstreams report usage (and why normalizing is needed):

- **OpenAI Chat Completions** ``usage``: ``prompt_tokens`` *includes* the cached
  ones (``prompt_tokens_details.cached_tokens``); ``completion_tokens``
  *includes* reasoning (``completion_tokens_details.reasoning_tokens``).
- **OpenAI Responses** ``usage``: ``input_tokens`` includes
  ``input_tokens_details.cached_tokens``; ``output_tokens`` includes
  ``output_tokens_details.reasoning_tokens``.
- **DeepSeek** (OpenAI shape) adds ``prompt_cache_hit_tokens`` /
  ``prompt_cache_miss_tokens``, which sum to ``prompt_tokens``.
- **Anthropic Messages** ``usage``: ``input_tokens`` *excludes* cache reads
  (``cache_read_input_tokens``) and cache writes
  (``cache_creation_input_tokens``); ``output_tokens`` includes thinking.
- **Gemini** ``usageMetadata``: ``promptTokenCount`` includes
  ``cachedContentTokenCount``; ``candidatesTokenCount`` *excludes*
  ``thoughtsTokenCount``, which is billed as output.
- **Ollama** ``/api/chat``: ``prompt_eval_count`` and ``eval_count``; no cache.

:class:`Usage` holds disjoint parts: ``input`` is uncached input only,
``output`` is every billed output token (reasoning included), and
``reasoning`` is the part of ``output`` spent thinking (reported, never priced
again).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pooldaemon._values import value_type

__all__ = [
    "Usage",
    "usage_from_anthropic",
    "usage_from_gemini",
    "usage_from_ollama",
    "usage_from_openai",
    "usage_from_responses",
]


@value_type
class Usage:
    """Disjoint token counts of one request (see the module docstring)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    requests: int = 1

    @property
    def total(self) -> int:
        """All billed tokens: input of every kind plus output."""
        return self.input + self.cache_read + self.cache_write + self.output

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.reasoning + other.reasoning,
            self.requests + other.requests,
        )


MAX_TOKENS = 10**12
"""The most tokens one count of one answer may claim; more is clamped. An upstream
that reports 2**63 would otherwise overflow SQLite's sums and fail every later
write of the usage store."""


def _int(data: Mapping[str, Any] | None, *path: str) -> int:
    """A non-negative int at ``path``, 0 when absent or malformed (upstreams vary)."""
    node: Any = data
    for key in path:
        # dict first: what JSON gives, and far cheaper to test than the Mapping ABC
        if not isinstance(node, dict) and not isinstance(node, Mapping):
            return 0
        node = node.get(key)
    kind = type(node)
    if kind is int:
        return node if 0 < node <= MAX_TOKENS else (MAX_TOKENS if node > 0 else 0)
    if kind is float:  # NaN and infinities count as nothing
        return int(min(node, MAX_TOKENS)) if node > 0.0 else 0
    return 0  # None, bool, str, lists ...


def usage_from_openai(usage: Mapping[str, Any] | None) -> Usage:
    """Chat Completions ``usage`` (OpenAI, DeepSeek, OpenRouter, LM Studio, ...)."""
    prompt = _int(usage, "prompt_tokens")
    cached = _int(usage, "prompt_tokens_details", "cached_tokens")
    if not cached:
        cached = _int(usage, "prompt_cache_hit_tokens")  # DeepSeek
    cached = min(cached, prompt)
    output = _int(usage, "completion_tokens")
    reasoning = min(_int(usage, "completion_tokens_details", "reasoning_tokens"), output)
    return Usage(input=prompt - cached, output=output, cache_read=cached, reasoning=reasoning)


def usage_from_responses(usage: Mapping[str, Any] | None) -> Usage:
    """OpenAI Responses API ``usage``."""
    prompt = _int(usage, "input_tokens")
    cached = min(_int(usage, "input_tokens_details", "cached_tokens"), prompt)
    output = _int(usage, "output_tokens")
    reasoning = min(_int(usage, "output_tokens_details", "reasoning_tokens"), output)
    return Usage(input=prompt - cached, output=output, cache_read=cached, reasoning=reasoning)


def usage_from_anthropic(usage: Mapping[str, Any] | None) -> Usage:
    """Anthropic Messages ``usage`` (also the cumulative ``message_delta`` usage)."""
    return Usage(
        input=_int(usage, "input_tokens"),
        output=_int(usage, "output_tokens"),
        cache_read=_int(usage, "cache_read_input_tokens"),
        cache_write=_int(usage, "cache_creation_input_tokens"),
    )


def usage_from_gemini(metadata: Mapping[str, Any] | None) -> Usage:
    """Gemini ``usageMetadata``."""
    prompt = _int(metadata, "promptTokenCount")
    cached = min(_int(metadata, "cachedContentTokenCount"), prompt)
    thoughts = _int(metadata, "thoughtsTokenCount")
    output = _int(metadata, "candidatesTokenCount") + thoughts
    return Usage(input=prompt - cached, output=output, cache_read=cached, reasoning=thoughts)


def usage_from_ollama(body: Mapping[str, Any] | None) -> Usage:
    """Ollama ``/api/chat`` final message (``done: true``)."""
    return Usage(input=_int(body, "prompt_eval_count"), output=_int(body, "eval_count"))
