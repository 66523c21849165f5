"""The ``providers:`` entries: endpoint, keys, models, limits, parameters."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, StrictBool, StrictStr, field_validator, model_validator

from pooldaemon.spec._base import FieldProblems, Loc, SpecModel
from pooldaemon.spec._types import (
    EnvName,
    Glob,
    HttpUrl,
    Label,
    PositiveDuration,
    ProviderId,
    format_duration,
    parse_duration,
    text_problem,
)

__all__ = [
    "DEFAULT_BASE_URLS",
    "BudgetSpec",
    "Capability",
    "KeySpec",
    "ModelParamsSpec",
    "ModelSpec",
    "PriceSpec",
    "ProviderSpec",
    "RateLimitSpec",
]

NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
PosInt = Annotated[int, Field(gt=0, strict=True)]

SEALED_VALUE = re.compile(r"^ENC\[[A-Za-z0-9+/=_:.,-]+\]$")


class Capability(StrEnum):
    """What a model can do; the router filters on these."""

    chat = "chat"
    vision = "vision"
    tools = "tools"
    json = "json"
    streaming = "streaming"
    thinking = "thinking"
    embeddings = "embeddings"
    image_generation = "image_generation"
    audio = "audio"
    moderation = "moderation"


class PriceSpec(SpecModel):
    """Prices in USD: per 1M tokens, and per request for media models."""

    input: NonNegFloat = 0.0
    """USD per 1M input tokens."""
    output: NonNegFloat = 0.0
    """USD per 1M output tokens."""
    cache_read: NonNegFloat | None = None
    """USD per 1M cached input tokens read (unset: the input price)."""
    cache_write: NonNegFloat | None = None
    """USD per 1M input tokens written to the cache (unset: the input price)."""
    per_request: NonNegFloat = 0.0
    """USD per request, for image/audio/video models priced per call."""


class KeySpec(SpecModel):
    """Where one API key comes from: exactly one of env, file, credential or value."""

    env: EnvName | None = None
    """Name of an environment variable of the daemon holding the key."""
    file: StrictStr | None = Field(default=None, min_length=1)
    """Path of a file holding the key (relative paths are relative to the YAML file)."""
    credential: StrictStr | None = Field(default=None, pattern=r"^[A-Za-z0-9_.@:-]+$")
    """Name of a systemd credential (LoadCredential=) in $CREDENTIALS_DIRECTORY."""
    value: StrictStr | None = Field(default=None, min_length=1, repr=False)
    """The key itself, sealed as ENC[...] (plain text works but is warned about)."""
    label: Label | None = None
    """A name for this key in status and metrics (never the key itself)."""
    enabled: StrictBool = True
    """A disabled key stays in git but is never used."""

    @field_validator("value")
    @classmethod
    def _printable_secret(cls, value: str | None) -> str | None:
        # The message must never include the value itself.
        if value is not None and (value != value.strip() or text_problem(value)):
            raise ValueError("the key contains whitespace or control characters")
        if value is not None and value.startswith("ENC[") and not SEALED_VALUE.match(value):
            # Not sent upstream as a plain key: it was meant to be sealed.
            raise ValueError(
                "the sealed value is damaged (truncated or edited): expected ENC[...] "
                "of letters, digits and + / = _ : . , -"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Self:
        given = [name for name in ("env", "file", "credential", "value") if getattr(self, name)]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            raise ValueError(
                f"a key needs exactly one of env:, file:, credential: or value: (got {what})"
            )
        return self

    @property
    def source(self) -> str:
        """A display form of where the key comes from, safe for logs (never the value)."""
        if self.env:
            return f"env:{self.env}"
        if self.file:
            return f"file:{self.file}"
        if self.credential:
            return f"credential:{self.credential}"
        return "value:sealed" if self.is_sealed else "value:plain"

    @property
    def is_sealed(self) -> bool:
        return self.value is not None and SEALED_VALUE.match(self.value) is not None


class ModelSpec(SpecModel):
    """A model the provider serves, declared statically (discovery adds more)."""

    id: StrictStr = Field(min_length=1, max_length=256, pattern=r"^\S+$")
    """The upstream model id, as the provider's API expects it."""
    name: Label | None = None
    """Display name."""
    context_window: PosInt | None = None
    """Total tokens the model accepts (prompt plus output)."""
    max_output: PosInt | None = None
    """Most output tokens the model produces in one answer."""
    capabilities: tuple[Capability, ...] | None = None
    """What the model can do: chat, vision, tools, json, streaming, thinking, embeddings, ...
    (unset: chat and streaming, unless the id is clearly not a chat model, e.g. embeddings)."""
    price: PriceSpec | None = None
    """Price of this model at this provider (overrides pricing tables)."""

    @model_validator(mode="after")
    def _output_fits(self) -> Self:
        if self.context_window and self.max_output and self.max_output > self.context_window:
            raise FieldProblems([(("max_output",), "max_output is larger than context_window")])
        return self


class RateLimitSpec(SpecModel):
    """Client-side limits kept by the daemon so the provider's own limits are not hit."""

    requests_per_minute: PosInt | None = None
    tokens_per_minute: PosInt | None = None
    tokens_per_day: PosInt | None = None


class BudgetSpec(SpecModel):
    """Spending limits; a provider or client over budget is skipped until the period ends."""

    usd_per_day: Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)] | None = None
    usd_per_month: Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)] | None = None
    tokens_per_day: PosInt | None = None


class ModelParamsSpec(SpecModel):
    """Defaults applied to requests that do not set them."""

    temperature: Annotated[float, Field(ge=0, le=2, strict=True)] | None = None
    max_tokens: PosInt | None = None
    top_p: Annotated[float, Field(ge=0, le=1, strict=True)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2, strict=True)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2, strict=True)] | None = None


Format = Literal["openai", "anthropic", "google", "ollama", "responses", "auto"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "responses": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
    "ollama": "http://127.0.0.1:11434",
}

_SUB_TIMEOUTS_DEFAULT_CONNECT = timedelta(seconds=10)
_SUB_TIMEOUTS_DEFAULT_FIRST_BYTE = timedelta(minutes=2)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Credentials come from keys: so they are redacted and rotated; a header must not bypass that.
_RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    }
)


class ProviderSpec(SpecModel):
    """One upstream: an API endpoint, its keys and what may be routed to it."""

    id: ProviderId
    """Stable id: lower-case letters, digits, '-', '_'. Runtime state is keyed by it."""
    name: Label | None = None
    """Display name."""
    format: Format = "openai"
    """Wire format the upstream speaks (auto: detect it)."""
    format_mode: Literal["auto", "pinned"] = "auto"
    """pinned: never probe for another format."""
    location: Literal["cloud", "local"] | None = None
    """cloud or local, for routing modes (unset: local for loopback/private hosts)."""
    base_url: HttpUrl | None = None
    """What the provider's own SDK takes as base URL (unset: the format's public endpoint)."""
    alternate_base_urls: tuple[HttpUrl, ...] = ()
    """Tried in order when the base URL answers 401/403."""
    api_version: StrictStr | None = Field(default=None, min_length=1, max_length=32)
    """Gemini path version (default v1beta) or Anthropic's anthropic-version header."""
    tls_verify: StrictBool = True
    """false accepts self-signed certificates (local relays only)."""
    enabled: StrictBool = True
    """A disabled provider stays in git but gets no traffic."""
    priority: Annotated[int, Field(ge=-1000, le=1000, strict=True)] = 0
    """Higher is preferred by the priority strategy."""
    weight: Annotated[int, Field(ge=1, le=1000, strict=True)] = 1
    """Share of traffic under round_robin relative to other providers."""
    keys: tuple[KeySpec, ...] = ()
    """API keys, used in turn; empty for a provider that needs none (local Ollama)."""
    allow_models: tuple[Glob, ...] = ()
    """Only these model ids (globs) are routed here; empty allows all."""
    models: tuple[ModelSpec, ...] = ()
    """Models declared statically, in addition to those discovered."""
    discover: StrictBool = True
    """false: never fetch the provider's model list (a relay without one); the models:
    declared are routed here or, with none declared, any model allow_models accepts."""
    headers: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    """Extra HTTP headers sent upstream (not for credentials: use keys)."""
    timeout: PositiveDuration = timedelta(minutes=10)
    """Total time for one upstream request, streaming included."""
    connect_timeout: PositiveDuration = _SUB_TIMEOUTS_DEFAULT_CONNECT
    """Time to open a new connection (TCP and TLS handshakes)."""
    first_byte_timeout: PositiveDuration = _SUB_TIMEOUTS_DEFAULT_FIRST_BYTE
    """Time from the start of a request (name lookup and connection included) to the
    answer's headers and, for a stream, its first event."""
    rate_limit: RateLimitSpec | None = None
    budget: BudgetSpec | None = None
    model_params: ModelParamsSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_format(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fmt = data.get("format", "openai")
        if data.get("base_url") is None and isinstance(fmt, str) and fmt in DEFAULT_BASE_URLS:
            data = {**data, "base_url": DEFAULT_BASE_URLS[fmt]}
        if data.get("location") is None and isinstance(data.get("base_url"), str):
            data = {**data, "location": _guess_location(data["base_url"])}
        return _cap_sub_timeouts(data)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        problems: list[tuple[Loc, str]] = []
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                problems.append(((name,), f"invalid HTTP header name {name!r}"))
            elif name.lower() in _RESERVED_HEADERS:
                problems.append(
                    ((name,), f"header {name!r} is set by the daemon; put credentials in keys:")
                )
            elif any(ch in value for ch in "\r\n\0"):
                problems.append(((name,), "header value contains a line break or NUL"))
        if problems:
            raise FieldProblems(problems)
        return headers

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        if self.base_url is None:
            problems.append(((), "format: auto needs a base_url"))
        if self.format == "auto" and not self.discover:
            problems.append(
                (
                    ("discover",),
                    "format: auto is detected through the model list; "
                    "with discover: false, set the format",
                )
            )
        if self.connect_timeout > self.timeout:
            problems.append((("connect_timeout",), "connect_timeout is longer than timeout"))
        if self.first_byte_timeout > self.timeout:
            problems.append((("first_byte_timeout",), "first_byte_timeout is longer than timeout"))
        seen: dict[str, int] = {}
        for i, model in enumerate(self.models):
            if model.id in seen:
                problems.append(
                    (("models", i, "id"), f"model {model.id!r} is declared twice in this provider")
                )
            seen.setdefault(model.id, i)
        sources: set[str] = set()
        for i, key in enumerate(self.keys):
            src = key.source if key.value is None else f"value:{key.value}"
            if src in sources:
                problems.append((("keys", i), "the same key is listed twice"))
            sources.add(src)
        if problems:
            raise FieldProblems(problems)
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id


_SUB_TIMEOUTS = {
    "connect_timeout": _SUB_TIMEOUTS_DEFAULT_CONNECT,
    "first_byte_timeout": _SUB_TIMEOUTS_DEFAULT_FIRST_BYTE,
}


def _cap_sub_timeouts(data: dict[str, Any]) -> dict[str, Any]:
    """A short ``timeout`` also shortens the sub-timeouts the user did not set."""
    try:
        total = parse_duration(data["timeout"]) if "timeout" in data else None
    except ValueError:
        return data  # reported by field validation
    if total is None:
        return data
    capped = {
        name: format_duration(min(default, total))
        for name, default in _SUB_TIMEOUTS.items()
        if name not in data and default > total
    }
    return {**data, **capped} if capped else data


def _guess_location(url: str) -> str:
    """local for loopback, private and link-local hosts and mDNS names, else cloud."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "host.docker.internal") or host.endswith((".local", ".lan")):
        return "local"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return "cloud"
    return "local" if addr.is_private or addr.is_loopback or addr.is_link_local else "cloud"
