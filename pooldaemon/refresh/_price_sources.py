"""Remote pricing tables in two community formats, parsed into one map; and their guard rail.

Two formats are understood, both JSON:

- ``litellm``: LiteLLM's ``model_prices_and_context_window.json``, an object of
  models with USD *per token* (``input_cost_per_token``, ``output_cost_per_token``,
  ``cache_read_input_token_cost``, ``cache_creation_input_token_cost``) and limits
  (``max_input_tokens``, ``max_output_tokens``, the legacy ``max_tokens``).
- ``models_dev``: models.dev's ``api.json``, an object of providers, each with
  ``models`` carrying ``cost`` in USD *per 1M tokens* and ``limit``.

Both become a map of model id -> :class:`RemoteModel` (prices in USD per 1M
tokens, as everywhere in pooldaemon). Keys:

- LiteLLM: each key as given (``gpt-4o``, ``deepseek/deepseek-chat``,
  ``openrouter/anthropic/claude-3.5-sonnet``), plus its bare form after the
  last ``/`` when the document has no key of that name itself.
- models.dev: ``provider/model`` always (``openai/gpt-4o``,
  ``openrouter/anthropic/claude-3.5-sonnet``), plus the bare model id
  (``gpt-4o``, ``anthropic/claude-3.5-sonnet``) unless it is one of the
  ``provider/model`` keys already.

When several entries offer the same bare id, the first-party vendor's wins
(:data:`FIRST_PARTY`: ``openai`` for ``gpt-4o``, not ``azure`` or
``openrouter``); among equals, the most direct key (fewest ``/``), then the
alphabetically first. The choice never depends on the document's order.

Parsing is strict per entry and tolerant per document: an entry that is
malformed (not an object, a price that is not a number, negative, NaN or above
:data:`MAX_PRICE`) is skipped and counted; entries that are simply not priced
chat models (LiteLLM's ``sample_spec``, embedding / image / audio / moderation
/ rerank modes, no per-token price; models.dev models without ``cost`` or
without text output) are left out and not counted. A document that is not
the expected shape at all, or yields no usable entry, raises
:class:`PriceSourceError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from pooldaemon.errors import PoolError
from pooldaemon.pool import Price

__all__ = [
    "FIRST_PARTY",
    "MAX_PRICE",
    "NEGLIGIBLE_PRICE",
    "ParsedPrices",
    "PriceSourceError",
    "RemoteModel",
    "parse_litellm",
    "parse_models_dev",
    "parse_source",
    "price_change_problem",
]

MAX_PRICE: Final = 10_000.0
"""USD per 1M tokens above which a price is taken for a broken entry (the dearest
chat models cost a few hundred)."""

NEGLIGIBLE_PRICE: Final = 1e-9
"""USD per 1M tokens below which a price counts as zero for the guard rail."""

MAX_TOKEN_LIMIT: Final = 100_000_000
"""A context window or output limit above this is ignored (left unknown)."""

FIRST_PARTY: Final = frozenset(
    {
        # models.dev provider ids and LiteLLM ``litellm_provider`` names of vendors
        # that serve their own models; relays (openrouter, azure, bedrock, vertex,
        # togetherai, groq, ...) are everything else.
        "ai21",
        "alibaba",
        "anthropic",
        "cohere",
        "cohere_chat",
        "dashscope",
        "deepseek",
        "gemini",
        "google",
        "llama",
        "meta",
        "meta_llama",
        "minimax",
        "mistral",
        "moonshot",
        "moonshotai",
        "openai",
        "perplexity",
        "text-completion-openai",
        "xai",
        "zai",
        "zhipuai",
    }
)
"""Vendors whose price wins a bare model id over a relay's."""

_LITELLM_MODES: Final = frozenset({"chat", "responses", "completion"})
_PER_MILLION: Final = 1_000_000.0
_COMPONENTS: Final = ("input", "output", "cache_read", "cache_write")


class PriceSourceError(PoolError, ValueError):
    """A pricing source's document is unusable: not JSON, not the expected shape,
    or without a single usable entry. The message says which."""


@dataclass(frozen=True, slots=True)
class RemoteModel:
    """One model's price (USD per 1M tokens) and limits, as a remote source gives them."""

    price: Price
    context_window: int | None = None
    max_output: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedPrices:
    """A parsed document: its models by id, and how many malformed entries were skipped."""

    models: Mapping[str, RemoteModel]
    skipped: int = 0


class _Malformed(Exception):
    """One entry is unusable; the parser skips and counts it."""


def parse_source(fmt: str, raw: bytes) -> ParsedPrices:
    """Decode ``raw`` as JSON and parse it in format ``fmt`` (``litellm`` | ``models_dev``)."""
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise PriceSourceError(f"unknown pricing source format {fmt!r}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise PriceSourceError(f"{fmt} source is not valid JSON: {exc}") from exc
    return parser(data)


def parse_litellm(data: object) -> ParsedPrices:
    """LiteLLM's price table: chat, responses and completion models (and those without a mode)."""
    if not isinstance(data, dict):
        raise PriceSourceError(f"a LiteLLM price table is a JSON object, not {_kind(data)}")
    models: dict[str, RemoteModel] = {}
    candidates: list[tuple[str, str, str]] = []
    skipped = 0
    for key, entry in data.items():
        if key == "sample_spec":
            continue
        try:
            parsed = _litellm_entry(entry)
        except _Malformed:
            skipped += 1
            continue
        if parsed is None:
            continue
        model, vendor = parsed
        models[key] = model
        bare = key.rpartition("/")[2]
        if bare and bare != key and bare not in data:
            candidates.append((bare, vendor, key))
    if not models:
        raise PriceSourceError(_nothing_usable("LiteLLM price table", skipped))
    for bare, key in _preferred(candidates).items():
        models[bare] = models[key]
    return ParsedPrices(MappingProxyType(models), skipped)


def parse_models_dev(data: object) -> ParsedPrices:
    """models.dev's ``api.json``: every provider's priced models with text output."""
    if not isinstance(data, dict):
        raise PriceSourceError(f"models.dev's api.json is a JSON object, not {_kind(data)}")
    models: dict[str, RemoteModel] = {}
    candidates: list[tuple[str, str, str]] = []
    skipped = 0
    for provider_id, provider in data.items():
        listed = provider.get("models") if isinstance(provider, dict) else None
        if not isinstance(listed, dict):
            skipped += 1
            continue
        for model_key, entry in listed.items():
            try:
                model = _models_dev_entry(entry)
            except _Malformed:
                skipped += 1
                continue
            if model is None:
                continue
            model_id = entry.get("id")
            if not isinstance(model_id, str) or not model_id:
                model_id = model_key
            qualified = f"{provider_id}/{model_id}"
            models[qualified] = model
            candidates.append((model_id, provider_id, qualified))
    if not models:
        raise PriceSourceError(_nothing_usable("models.dev api.json", skipped))
    chosen = _preferred(
        (bare, vendor, key) for bare, vendor, key in candidates if bare not in models
    )
    for bare, key in chosen.items():
        models[bare] = models[key]
    return ParsedPrices(MappingProxyType(models), skipped)


def price_change_problem(
    old: Mapping[str, RemoteModel], new: Mapping[str, RemoteModel], factor: float
) -> str | None:
    """Why a new fetch must not replace the previous data, or None when it may.

    The guard rail against a broken source repricing everything; three checks:

    - *dropped*: the new document lists fewer than half as many models as the
      previous one (a truncated or reshaped file);
    - *moved*: for a model in both, a price component (input, output,
      cache_read, cache_write) changed by more than ``factor`` up or down. The
      message names the worst model. A component is compared only when both
      prices are at least :data:`NEGLIGIBLE_PRICE`: from or to zero there is no
      ratio, and a model turning free (or priced) alone is a legitimate change;
    - *zeroed*: at least two, and more than half, of the models in both that
      had a price are now entirely free (what a source emitting zeros for
      everything looks like, which the ratio check cannot see).

    A rejected change stays rejected on every refresh until the source changes
    again; the operator can raise ``max_change``, or delete the source's file
    under ``state_dir/pricing`` to accept whatever it serves next.
    """
    if old and 2 * len(new) < len(old):
        return (
            f"the source now lists {len(new)} models, fewer than half of the "
            f"{len(old)} it listed before"
        )
    common = sorted(old.keys() & new.keys())
    return _moved_problem(old, new, common, factor) or _zeroed_problem(old, new, common)


def _moved_problem(
    old: Mapping[str, RemoteModel],
    new: Mapping[str, RemoteModel],
    common: Iterable[str],
    factor: float,
) -> str | None:
    worst: tuple[float, str, str, float, float] | None = None
    for key in common:
        pairs = zip(_COMPONENTS, _amounts(old[key].price), _amounts(new[key].price), strict=True)
        for component, before, after in pairs:
            if before is None or after is None:
                continue
            if before < NEGLIGIBLE_PRICE or after < NEGLIGIBLE_PRICE:
                continue
            ratio = max(before, after) / min(before, after)
            if worst is None or ratio > worst[0]:
                worst = (ratio, key, component, before, after)
    if worst is None or worst[0] <= factor * (1 + 1e-9):  # 3.0 / 0.3 is 10.000000000000002
        return None
    ratio, key, component, before, after = worst
    direction = "up" if after > before else "down"
    return (
        f"{key}: {component} price moved {direction} {ratio:.3g}x "
        f"({before:g} -> {after:g} USD per 1M tokens), more than max_change {factor:g}"
    )


def _zeroed_problem(
    old: Mapping[str, RemoteModel], new: Mapping[str, RemoteModel], common: Iterable[str]
) -> str | None:
    priced = [key for key in common if not _negligible(old[key].price)]
    zeroed = [key for key in priced if _negligible(new[key].price)]
    if len(zeroed) < 2 or 2 * len(zeroed) <= len(priced):
        return None
    return (
        f"{len(zeroed)} of {len(priced)} priced models became free "
        f"(for example {', '.join(zeroed[:3])})"
    )


def _amounts(price: Price) -> tuple[float | None, float | None, float | None, float | None]:
    return (price.input, price.output, price.cache_read, price.cache_write)


def _negligible(price: Price) -> bool:
    return all(amount is None or amount < NEGLIGIBLE_PRICE for amount in _amounts(price))


def _litellm_entry(entry: object) -> tuple[RemoteModel, str] | None:
    """One LiteLLM entry and its ``litellm_provider``; None for an entry that is not a
    priced chat model. Raises :class:`_Malformed`."""
    if not isinstance(entry, dict):
        raise _Malformed("not an object")
    mode = entry.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise _Malformed("mode is not a string")
    if mode is not None and mode not in _LITELLM_MODES:
        return None
    if "input_cost_per_token" not in entry and "output_cost_per_token" not in entry:
        return None
    price = Price(
        input=_amount(entry, "input_cost_per_token", _PER_MILLION) or 0.0,
        output=_amount(entry, "output_cost_per_token", _PER_MILLION) or 0.0,
        cache_read=_amount(entry, "cache_read_input_token_cost", _PER_MILLION),
        cache_write=_amount(entry, "cache_creation_input_token_cost", _PER_MILLION),
    )
    context = _limit(entry.get("max_input_tokens"))
    output = _limit(entry.get("max_output_tokens"))
    if output is None and context is not None:
        # ``max_tokens`` is the output limit when the provider states one, else a
        # copy of the input limit: only a value below the context is an output limit.
        legacy = _limit(entry.get("max_tokens"))
        output = legacy if legacy is not None and legacy < context else None
    vendor = entry.get("litellm_provider")
    return RemoteModel(price, context, output), vendor if isinstance(vendor, str) else ""


def _models_dev_entry(entry: object) -> RemoteModel | None:
    """One models.dev model; None for a model without a cost or without text output.
    Raises :class:`_Malformed`."""
    if not isinstance(entry, dict):
        raise _Malformed("not an object")
    cost = entry.get("cost")
    if cost is None:
        return None
    if not isinstance(cost, dict):
        raise _Malformed("cost is not an object")
    if "input" not in cost and "output" not in cost:
        return None
    modalities = entry.get("modalities")
    outputs = modalities.get("output") if isinstance(modalities, dict) else None
    if isinstance(outputs, list) and "text" not in outputs:
        return None  # image, audio or embedding-only models
    price = Price(
        input=_amount(cost, "input", 1.0) or 0.0,
        output=_amount(cost, "output", 1.0) or 0.0,
        cache_read=_amount(cost, "cache_read", 1.0),
        cache_write=_amount(cost, "cache_write", 1.0),
    )
    limit = entry.get("limit")
    if not isinstance(limit, dict):
        return RemoteModel(price)
    return RemoteModel(price, _limit(limit.get("context")), _limit(limit.get("output")))


def _amount(entry: Mapping[str, object], key: str, scale: float) -> float | None:
    """``entry[key]`` times ``scale`` (to USD per 1M tokens); None when absent or null."""
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed(f"{key} is not a number")
    try:
        amount = round(float(value) * scale, 10)  # 3e-07 * 1e6 is 0.30000000000000004
    except OverflowError as exc:
        raise _Malformed(f"{key} is out of range") from exc
    if not math.isfinite(amount) or amount < 0 or amount > MAX_PRICE:
        raise _Malformed(f"{key} is not a plausible price")
    return amount


def _limit(value: object) -> int | None:
    """A token limit, or None when absent or not a plausible positive integer."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    limit = int(value)
    return limit if 0 < limit <= MAX_TOKEN_LIMIT else None


def _preferred(candidates: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """Bare id -> the key it aliases, from ``(bare, vendor, key)`` candidates: a
    first-party vendor first, then the fewest ``/`` in the key, then the smallest key."""
    best: dict[str, tuple[tuple[bool, int, str], str]] = {}
    for bare, vendor, key in candidates:
        rank = (vendor not in FIRST_PARTY, key.count("/"), key)
        if bare not in best or rank < best[bare][0]:
            best[bare] = (rank, key)
    return {bare: key for bare, (_, key) in best.items()}


def _nothing_usable(what: str, skipped: int) -> str:
    detail = f" ({skipped} malformed entries skipped)" if skipped else ""
    return f"the {what} has no usable priced model{detail}"


def _kind(data: object) -> str:
    return {list: "an array", str: "a string", type(None): "null"}.get(type(data), "a scalar")


_PARSERS: Final[dict[str, Callable[[object], ParsedPrices]]] = {
    "litellm": parse_litellm,
    "models_dev": parse_models_dev,
}
