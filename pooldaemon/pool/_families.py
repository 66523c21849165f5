"""Model-family knowledge: a price for ids no table knows, and which ids can chat.

:func:`family_price` is the original package's ``MatchModelPricing``: keywords
pick a family (claude, gpt, gemini, ...), then the first matching tier in
order (mini before base, flash-lite before flash, legacy generations before
the current one) names a built-in table entry whose price is used. It is a
fallback for ids that :meth:`BuiltinTable.lookup` cannot place, such as relay
variants (``claude-sonnet-4-5-thinking``) or future versions
(``claude-opus-9`` is priced as the newest Opus in the table).

:func:`supports_chat_model_id` is ``SupportsChatCompletionsModelID``: unknown ids
are assumed to chat (custom relays must keep working); only clearly non-chat
families are refused. Decisions for the borderline cases:

- realtime models (``gpt-realtime``, ``gpt-4o-realtime-preview``) and the
  audio chat models (``gpt-4o-audio-preview``, ``gpt-audio``, Gemini
  ``native-audio``) are **not** chat: they speak WebSocket/WebRTC or refuse a
  request with no audio in it, so a text chat request routed to them fails;
- ``computer-use-preview`` is not chat: it only works with its Responses tool;
- models that only the Responses API serves (``o3-pro``, ``gpt-5-pro``,
  ``gpt-5-codex``) *are* chat: the gateway reaches them through a
  ``format: responses`` provider;
- vision chat models (``llama3.2-vision``, ``gemini-2.5-flash-image``) and
  classifiers that answer as chat (``llama-guard-3-8b``) are chat.

Both functions are pure, deterministic and never raise on any string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from pooldaemon.pool._builtin import load_builtin_table
from pooldaemon.pool._price import Price, PriceQuote

__all__ = [
    "FAMILIES",
    "ModelFamily",
    "Tier",
    "family_price",
    "family_quote",
    "supports_chat_model_id",
]

_SEPARATORS: Final = re.compile(r"[\s/_:@]+")
_MAX_ID_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class Tier:
    """A tier matches when ``all_of`` keywords, and one of ``any_of`` (if given), occur.

    ``entry`` is the built-in table id whose price the tier uses; ``label`` is the
    family label reported with it (``claude-sonnet``).
    """

    label: str
    entry: str
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    def matches(self, text: str) -> bool:
        return all(key in text for key in self.all_of) and (
            not self.any_of or any(key in text for key in self.any_of)
        )


@dataclass(frozen=True, slots=True)
class ModelFamily:
    """Models sharing a naming scheme: any of ``keywords`` selects it, ``tiers`` in order."""

    name: str
    keywords: tuple[str, ...]
    tiers: tuple[Tier, ...]
    default: Tier | None = None

    def tier(self, text: str) -> Tier | None:
        return next((tier for tier in self.tiers if tier.matches(text)), self.default)


def _t(label: str, entry: str, *all_of: str, any_of: tuple[str, ...] = ()) -> Tier:
    return Tier(label=label, entry=entry, all_of=all_of, any_of=any_of)


# Keywords are matched against the lowercased id with separators turned into "-"
# and a "-" added at both ends, so "-o3-" means the token "o3" and "-8b-" a size.
_CLAUDE_SONNET: Final = _t("claude-sonnet", "claude-sonnet-5-5", "sonnet")
_GEMINI_FLASH: Final = _t("gemini-flash", "gemini-2.5-flash", "flash")

FAMILIES: Final[tuple[ModelFamily, ...]] = (
    ModelFamily(
        "claude",
        ("claude",),
        (
            _t(
                "claude-opus",
                "claude-opus-4-1",
                "opus",
                any_of=("opus-4-0", "opus-4-1", "opus-4.1", "opus-4-2025", "3-opus", "opus-3"),
            ),
            _t("claude-opus", "claude-opus-4-6", "opus-4"),
            _t("claude-opus", "claude-opus-5-5", "opus"),
            _t(
                "claude-sonnet",
                "claude-sonnet-4-5",
                "sonnet",
                any_of=(
                    "sonnet-4",
                    "sonnet-3",
                    "3-sonnet",
                    "3-5-sonnet",
                    "3.5-sonnet",
                    "3-7-sonnet",
                    "3.7-sonnet",
                ),
            ),
            _CLAUDE_SONNET,
            _t("claude-haiku", "claude-3-5-haiku", "haiku", any_of=("3-5-haiku", "3.5-haiku")),
            _t("claude-haiku", "claude-3-haiku", "haiku", any_of=("3-haiku", "haiku-3")),
            _t("claude-haiku", "claude-haiku-4-5", "haiku-4"),
            _t("claude-haiku", "claude-haiku-5-5", "haiku"),
        ),
        default=_CLAUDE_SONNET,
    ),
    ModelFamily(
        "gpt",
        ("-gpt-", "-chatgpt-"),
        (
            _t("gpt-5.5", "gpt-5.5", "gpt-5.5"),
            _t("gpt-5.4-nano", "gpt-5.4-nano", "gpt-5.4", "nano"),
            _t("gpt-5.4-mini", "gpt-5.4-mini", "gpt-5.4", "mini"),
            _t("gpt-5.4", "gpt-5.4", "gpt-5.4"),
            _t("gpt-5.2", "gpt-5.2", "gpt-5.2"),
            _t("gpt-5-nano", "gpt-5-nano", "gpt-5", "nano"),
            _t("gpt-5-mini", "gpt-5-mini", "gpt-5", "mini"),
            _t("gpt-5-pro", "gpt-5-pro", "gpt-5", "-pro-"),
            _t("gpt-5", "gpt-5", "gpt-5"),
            _t("gpt-4.1-nano", "gpt-4.1-nano", "gpt-4.1", "nano"),
            _t("gpt-4.1-mini", "gpt-4.1-mini", "gpt-4.1", "mini"),
            _t("gpt-4.1", "gpt-4.1", "gpt-4.1"),
            _t("gpt-4o-mini", "gpt-4o-mini", "gpt-4o", "mini"),
            _t("gpt-4o", "gpt-4o", "gpt-4o"),
            _t("gpt-4-turbo", "gpt-4-turbo", "-gpt-4-", any_of=("turbo", "-1106-", "-0125-")),
            _t("gpt-4", "gpt-4", "-gpt-4-"),
            _t("gpt-3.5-turbo", "gpt-3.5-turbo", "gpt-3.5"),
        ),
    ),
    ModelFamily(
        "openai-o",
        ("-o1-", "-o3-", "-o4-"),
        (
            _t("o4-mini", "o4-mini", "-o4-mini-"),
            _t("o3-mini", "o3-mini", "-o3-mini-"),
            _t("o3-pro", "o3-pro", "-o3-pro-"),
            _t("o3", "o3", "-o3-"),
            _t("o1-mini", "o1-mini", "-o1-mini-"),
            _t("o1-pro", "o1-pro", "-o1-pro-"),
            _t("o1", "o1", "-o1-"),
        ),
    ),
    ModelFamily(
        "gemini",
        ("gemini",),
        (
            _t("gemini-flash-lite", "gemini-2.0-flash-lite", "gemini-2.0", "flash-lite"),
            _t("gemini-flash-lite", "gemini-2.5-flash-lite", "flash-lite"),
            _t("gemini-flash", "gemini-2.0-flash", "gemini-2.0", "flash"),
            _t("gemini-pro", "gemini-3-pro-preview", "gemini-3", "pro"),
            _t("gemini-flash", "gemini-3-flash-preview", "gemini-3", "flash"),
            _t("gemini-pro", "gemini-2.5-pro", "pro"),
            _GEMINI_FLASH,
        ),
        default=_GEMINI_FLASH,
    ),
    ModelFamily(
        "deepseek",
        ("deepseek",),
        (
            _t(
                "deepseek-reasoner",
                "deepseek-reasoner",
                any_of=("reasoner", "-r1", "think"),
            ),
        ),
        default=_t("deepseek-chat", "deepseek-chat"),
    ),
    ModelFamily(
        "mistral",
        ("mistral", "mixtral", "codestral", "devstral", "magistral", "ministral", "pixtral"),
        (
            _t("codestral", "codestral-2508", "codestral"),
            _t("devstral", "devstral-medium-2507", "devstral", "medium"),
            _t("devstral", "devstral-small-2507", "devstral"),
            _t("magistral", "magistral-small-2509", "magistral", "small"),
            _t("magistral", "magistral-medium-2509", "magistral"),
            _t("ministral", "ministral-3b-2410", "ministral", "-3b"),
            _t("ministral", "ministral-8b-2410", "ministral"),
            _t("mistral-large", "pixtral-large-2411", "pixtral", "large"),
            _t("mistral-large", "mistral-large-2512", "large"),
            _t("mistral-medium", "mistral-medium-2508", "medium"),
            _t("mistral-small", "mistral-small-2506", any_of=("small", "pixtral")),
            _t("mistral-nemo", "open-mistral-nemo", "nemo"),
        ),
        default=_t("mistral-medium", "mistral-medium-2508"),
    ),
    ModelFamily(
        "grok",
        ("grok",),
        (
            _t("grok-code", "grok-code-fast-1", "grok-code"),
            _t("grok-fast", "grok-4-1-fast-reasoning", "grok-4", "fast"),
            _t("grok-3-mini", "grok-3-mini", "mini"),
            _t("grok-3", "grok-3", "grok-3"),
        ),
        default=_t("grok-4", "grok-4-0709"),
    ),
    ModelFamily(
        "llama",
        ("-llama",),
        (
            _t("llama-405b", "llama-3.1-405b-instruct", "-405b"),
            _t("llama-4-maverick", "llama-4-maverick-17b-128e-instruct", "maverick"),
            _t("llama-4-scout", "llama-4-scout-17b-16e-instruct", "scout"),
            _t("llama-70b", "llama-3.3-70b-instruct", any_of=("-70b", "-90b")),
            _t("llama-8b", "llama-3.1-8b-instruct", any_of=("-1b", "-3b", "-8b", "-11b")),
        ),
        default=_t("llama-70b", "llama-3.3-70b-instruct"),
    ),
    ModelFamily(
        "qwen",
        ("qwen", "-qwq"),
        (
            _t("qwen-max", "qwen3-max", "qwen3", "max"),
            _t("qwen-max", "qwen-max", "max"),
            _t("qwen-coder", "qwen3-coder-plus", "coder"),
            _t("qwen-plus", "qwen-plus", "plus"),
            _t("qwen-flash", "qwen-flash", "flash"),
            _t("qwen-turbo", "qwen-turbo", "turbo"),
        ),
        default=_t("qwen-plus", "qwen-plus"),
    ),
    ModelFamily(
        "cohere",
        ("command-a", "command-r", "-cohere-"),
        (
            _t("command-r7b", "command-r7b-12-2024", "command-r7b"),
            _t("command-r-plus", "command-r-plus-08-2024", "command-r-plus"),
            _t("command-r", "command-r-08-2024", "command-r"),
        ),
        default=_t("command-a", "command-a-03-2025"),
    ),
)

# Markers of ids that are not chat models, matched like the family keywords.
_NOT_CHAT: Final = (
    # embeddings
    "embed",
    "-bge-",
    "-e5-",
    "-gte-",
    "-voyage-",
    "all-minilm",
    # speech: text to speech, speech to text
    "tts",
    "whisper",
    "transcribe",
    # images and video
    "dall-e",
    "gpt-image",
    "imagen",
    "stable-diffusion",
    "sdxl",
    "-sd3",
    "flux",
    "-sora",
    "-veo",
    # classifiers and retrieval that are not chat
    "moderation",
    "rerank",
    "-ocr",
    "-aqa-",
    # legacy completions-only models
    "davinci",
    "babbage",
    "gpt-3.5-turbo-instruct",
    # realtime / audio-only sessions and tool-bound previews (see the module docstring)
    "realtime",
    "audio-preview",
    "-gpt-audio",
    "native-audio",
    "computer-use",
)


def _match_text(model_id: str) -> str:
    """``model_id`` lowercased, separators as ``-``, padded with ``-`` at both ends."""
    return f"-{_SEPARATORS.sub('-', model_id[:_MAX_ID_LENGTH].strip().lower())}-"


def supports_chat_model_id(model_id: str) -> bool:
    """Whether ``model_id`` looks usable for chat requests; unknown ids default to True."""
    text = _match_text(model_id)
    return not any(marker in text for marker in _NOT_CHAT)


def family_price(model_id: str) -> tuple[Price, str] | None:
    """The price of the family tier ``model_id`` belongs to, and its label; else None.

    Non-chat ids get None: a chat price for an embedding or image model is wrong.
    """
    text = _match_text(model_id)
    if any(marker in text for marker in _NOT_CHAT):
        return None
    family = next((f for f in FAMILIES if any(k in text for k in f.keywords)), None)
    tier = None if family is None else family.tier(text)
    if tier is None:
        return None
    return load_builtin_table()[tier.entry].price, tier.label


def family_quote(model_id: str) -> PriceQuote | None:
    """:func:`family_price` as a :class:`PriceQuote` (source ``heuristic``, matched the label)."""
    found = family_price(model_id)
    if found is None:
        return None
    price, label = found
    return PriceQuote(price=price, source="heuristic", matched=label)
