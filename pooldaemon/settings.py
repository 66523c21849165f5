"""Process settings: environment variables ``POOLDAEMON_*``, overridden by CLI flags.

These are how this process runs (paths, listeners, tokens, logging, limits);
the desired state of the pool is the YAML file, never a setting.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pooldaemon.errors import SettingsError

__all__ = [
    "ADMIN_TOKEN_CREDENTIAL",
    "ENV_PREFIX",
    "Settings",
    "is_loopback",
    "load_settings",
    "split_host_port",
]

ADMIN_TOKEN_CREDENTIAL = "admin-token"  # the unit's LoadCredential= name

ENV_PREFIX = "POOLDAEMON_"


def split_host_port(address: str) -> tuple[str, int]:
    """``127.0.0.1:8790`` -> ``('127.0.0.1', 8790)``; IPv6 as ``[::1]:8790``."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{address!r} is not HOST:PORT (e.g. 127.0.0.1:8790)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{address!r}: write IPv6 addresses in brackets, like [::1]:8790")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{address!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether a listen host is reachable only from this machine."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Settings(BaseSettings):
    """Settings of one pooldaemon process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, extra="forbid", frozen=True
    )

    config: Path = Path("config/pool.yaml")
    """The YAML desired state."""
    state_dir: Path = Path("state")
    """SQLite, last-known-good config and caches."""
    listen: str = "127.0.0.1:8790"
    """Proxy listener."""
    admin_listen: str = "127.0.0.1:8791"
    """Admin API and metrics listener."""
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    secret_key_files: Annotated[tuple[Path, ...], NoDecode] = ()
    """Private keys for sealed values: one path, or a JSON list of paths."""
    trial_public_keys: Annotated[tuple[Path, ...], NoDecode] = ()
    """Public keys whose trial licences are trusted: one path, or a JSON list of paths."""
    config_poll_interval: float = Field(default=30.0, gt=0)
    """Seconds between checksum polls of the config (a safety net beside the file watch)."""
    watch_force_polling: bool = False
    """Poll the config's directory instead of inotify (network filesystems)."""
    max_request_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    max_response_bytes: int = Field(default=64 * 1024 * 1024, gt=0)

    @field_validator("listen", "admin_listen")
    @classmethod
    def _address(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("secret_key_files", "trial_public_keys", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a JSON list of paths: {exc.msg}") from None
            return (text,) if text else ()
        return value

    @model_validator(mode="after")
    def _one_token_source(self) -> Settings:
        if self.admin_token is not None and self.admin_token_file is not None:
            raise ValueError("set admin_token or admin_token_file, not both")
        return self

    def admin_token_value(self) -> str | None:
        """The admin token: ``admin_token``, else read from ``admin_token_file``, else the
        systemd credential ``admin-token`` (``$CREDENTIALS_DIRECTORY/admin-token``)."""
        if self.admin_token is not None:
            return self.admin_token.get_secret_value() or None
        path = self.admin_token_file
        if path is None:
            credentials = os.environ.get("CREDENTIALS_DIRECTORY")
            candidate = Path(credentials) / ADMIN_TOKEN_CREDENTIAL if credentials else None
            if candidate is None or not candidate.is_file():
                return None
            path = candidate
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"admin_token_file {path}: cannot read it ({exc.__class__.__name__})"
            ) from None
        if not token:
            raise SettingsError(f"admin_token_file {path} is empty")
        return token


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with ``overrides`` (CLI flags) on top.

    Raises :class:`SettingsError` naming the field and where its value came from.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            name = str(err["loc"][0]) if err["loc"] else ""
            if name in given:
                source = f"--{name.replace('_', '-')}"
            elif name and f"{ENV_PREFIX}{name.upper()}" in os.environ:
                source = f"environment variable {ENV_PREFIX}{name.upper()}"
            else:
                source = "settings"
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{name or 'settings'} (from {source}): {message}")
        raise SettingsError("; ".join(lines)) from None
