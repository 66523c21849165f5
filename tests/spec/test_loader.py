from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from pooldaemon.errors import ConfigError, PoolError
from pooldaemon.spec import LoadedSpec, PoolSpec, load_spec_file
from pooldaemon.spec._loader import MAX_SPEC_BYTES

Load = Callable[..., LoadedSpec]


def _errors(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(issue) for issue in exc.value.issues]


def test_minimal_file_gets_defaults(load: Load) -> None:
    spec = load("version: 1\n").spec
    assert spec == PoolSpec(version=1)
    assert spec.routing.mode == "auto" and spec.routing.strategy == "priority"
    assert spec.cooldown.initial == timedelta(seconds=30)
    assert spec.cooldown.transient.max == timedelta(minutes=1)
    assert spec.usage.retention == timedelta(days=90)


@pytest.mark.parametrize(
    ("fmt", "url"),
    [
        ("openai", "https://api.openai.com/v1"),
        ("responses", "https://api.openai.com/v1"),
        ("anthropic", "https://api.anthropic.com"),
        ("google", "https://generativelanguage.googleapis.com"),
        ("ollama", "http://127.0.0.1:11434"),
    ],
)
def test_base_url_defaults_by_format(load: Load, fmt: str, url: str) -> None:
    provider = load(f"version: 1\nproviders: [{{id: p, format: {fmt}}}]\n").spec.providers[0]
    assert provider.base_url == url
    assert provider.location == ("local" if fmt == "ollama" else "cloud")


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("http://localhost:1234/v1", "local"),
        ("http://192.168.1.20:1234/v1", "local"),
        ("http://10.0.0.5/v1", "local"),
        ("http://[::1]:8080/v1", "local"),
        ("http://nas.local:11434", "local"),
        ("https://openrouter.ai/api/v1", "cloud"),
        ("https://8.8.8.8/v1", "cloud"),
    ],
)
def test_location_is_guessed_from_host(load: Load, url: str, location: str) -> None:
    spec = load(f"version: 1\nproviders: [{{id: p, base_url: '{url}'}}]\n").spec
    assert spec.providers[0].location == location


def test_explicit_location_wins(load: Load) -> None:
    text = "version: 1\nproviders: [{id: p, base_url: 'http://127.0.0.1:1', location: cloud}]\n"
    assert load(text).spec.providers[0].location == "cloud"


def test_trailing_slash_of_base_url_is_dropped(load: Load) -> None:
    spec = load("version: 1\nproviders: [{id: p, base_url: 'https://x.example/v1/'}]\n").spec
    assert spec.providers[0].base_url == "https://x.example/v1"


def test_short_timeout_caps_unset_sub_timeouts(load: Load) -> None:
    provider = load("version: 1\nproviders: [{id: p, timeout: 5s}]\n").spec.providers[0]
    assert provider.timeout == timedelta(seconds=5)
    assert provider.connect_timeout == timedelta(seconds=5)
    assert provider.first_byte_timeout == timedelta(seconds=5)
    provider = load("version: 1\nproviders: [{id: p, timeout: 1h}]\n").spec.providers[0]
    assert provider.connect_timeout == timedelta(seconds=10)
    assert provider.first_byte_timeout == timedelta(minutes=2)


def test_unquoted_dates_stay_text(load: Load) -> None:
    text = "version: 1\nproviders:\n  - id: a\n    format: anthropic\n    api_version: 2023-06-01\n"
    assert load(text).spec.providers[0].api_version == "2023-06-01"


def test_merge_keys_and_anchors(load: Load) -> None:
    text = """\
version: 1
providers:
  - &relay
    id: relay-a
    base_url: https://a.example/v1
    priority: 5
    allow_models: ["gpt-*"]
  - <<: *relay
    id: relay-b
    base_url: https://b.example/v1
"""
    a, b = load(text).spec.providers
    assert (b.id, b.base_url, b.priority, b.allow_models) == (
        "relay-b",
        "https://b.example/v1",
        5,
        ("gpt-*",),
    )
    assert a.id == "relay-a"


def test_merged_key_error_points_at_explicit_key(load: Load) -> None:
    text = """\
version: 1
providers:
  - &base
    id: one
    priority: 1
  - <<: *base
    id: two
    priority: "high"
"""
    with pytest.raises(ConfigError) as exc:
        load(text)
    (issue,) = exc.value.issues
    assert (issue.line, issue.path) == (8, "providers.two.priority")


def test_errors_are_sorted_and_all_reported(load: Load) -> None:
    text = "version: 1\nrouting: {strategy: fastest}\ncooldown: {initial: 1}\nusage: {keep: 1d}\n"
    with pytest.raises(ConfigError) as exc:
        load(text)
    assert [i.line for i in exc.value.issues] == [2, 3, 4]


def test_config_error_is_a_value_error_and_pool_error(load: Load) -> None:
    with pytest.raises(ConfigError) as exc:
        load("version: 3\n")
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, PoolError)
    assert "pool.yaml:1:10: version:" in str(exc.value)


class TestWarnings:
    def test_plain_text_value(self, load: Load) -> None:
        loaded = load("version: 1\nproviders:\n  - id: p\n    keys: [{value: sk-123}]\n")
        (warning,) = loaded.warnings
        assert warning.severity == "warning"
        assert (warning.line, warning.path) == (4, "providers.p.keys[0].value")
        assert "plain-text secret" in warning.message and "sk-123" not in str(warning)

    def test_sealed_value_is_quiet(self, load: Load) -> None:
        assert not load(
            "version: 1\nproviders: [{id: p, keys: [{value: 'ENC[v1:a:b]'}]}]\n"
        ).warnings

    def test_unset_env(self, load: Load) -> None:
        text = "version: 1\nproviders: [{id: p, keys: [{env: MY_KEY}]}]\n"
        (warning,) = load(text).warnings
        assert "'MY_KEY' is not set" in warning.message
        assert not load(text, env={"MY_KEY": "x"}).warnings

    def test_local_mode_without_local_provider(self, load: Load) -> None:
        text = "version: 1\nrouting:\n  mode: local\nproviders: [{id: p, keys: [{env: K}]}]\n"
        (warning,) = load(text, env={"K": "1"}).warnings
        assert (warning.line, warning.path) == (3, "routing.mode")
        text = "version: 1\nrouting: {mode: local}\nproviders: [{id: o, format: ollama}]\n"
        assert not load(text).warnings

    def test_cloud_provider_without_key_and_tls_off(self, load: Load) -> None:
        text = "version: 1\nproviders: [{id: p, tls_verify: false}]\n"
        messages = sorted(w.message for w in load(text).warnings)
        assert len(messages) == 2
        assert "TLS verification is off" in messages[0]
        assert "without an enabled key" in messages[1]


class TestSecretsStayOut:
    """Error messages never echo what was written in a secret field."""

    @pytest.mark.parametrize(
        "keys", ["[{value: 1234567890123}]", "[{value: [sk-live-secret-1]}]", "[{value: true}]"]
    )
    def test_bad_key_values(self, load: Load, keys: str) -> None:
        with pytest.raises(ConfigError) as exc:
            load(f"version: 1\nproviders: [{{id: p, keys: {keys}}}]\n")
        text = str(exc.value)
        assert "providers.p.keys[0].value" in text
        assert "1234567890123" not in text and "sk-live-secret-1" not in text

    def test_trial_licence(self, load: Load) -> None:
        with pytest.raises(ConfigError) as exc:
            load("version: 1\ntrial: {licence: 987654321}\n")
        assert "987654321" not in str(exc.value)


class TestUnreadable:
    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as exc:
            load_spec_file(tmp_path / "nope.yaml")
        assert str(exc.value).endswith("nope.yaml: cannot read the file: No such file or directory")

    def test_directory(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read the file"):
            load_spec_file(tmp_path)

    def test_not_utf8(self, load_bytes: Callable[[bytes], LoadedSpec]) -> None:
        with pytest.raises(ConfigError) as exc:
            load_bytes(b"version: 1\nrouting:\n  mode: \xff\xfe\n")
        (issue,) = exc.value.issues
        assert (issue.line, issue.column) == (3, 9)
        assert "not valid UTF-8" in issue.message

    def test_bom_is_accepted(self, load_bytes: Callable[[bytes], LoadedSpec]) -> None:
        assert load_bytes(b"\xef\xbb\xbfversion: 1\n").spec.version == 1

    def test_control_character(self, load_bytes: Callable[[bytes], LoadedSpec]) -> None:
        with pytest.raises(ConfigError) as exc:
            load_bytes(b"version: 1\nrouting: {mode: \x07}\n")
        assert exc.value.issues[0].line == 2

    def test_too_large(self, load_bytes: Callable[[bytes], LoadedSpec]) -> None:
        with pytest.raises(ConfigError, match="larger than"):
            load_bytes(b"#" * (MAX_SPEC_BYTES + 1))

    def test_alias_bomb_is_refused(self, load_bytes: Callable[[bytes], LoadedSpec]) -> None:
        lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
        with pytest.raises(ConfigError, match="document too large"):
            load_bytes("\n".join(lines).encode())

    def test_deep_nesting(self, load_bytes: Callable[[bytes], LoadedSpec]) -> None:
        with pytest.raises(ConfigError, match="nested"):
            load_bytes(b"version: 1\nx: " + b"[" * 100 + b"]" * 100 + b"\n")
        with pytest.raises(ConfigError):
            load_bytes(b"version: 1\nx: " + b"[" * 5000 + b"]" * 5000 + b"\n")


def test_sha256_and_issue_at(load: Load, tmp_path: Path) -> None:
    text = "version: 1\nproviders:\n  - id: openai\n    priority: 3\n"
    loaded = load(text)
    assert loaded.sha256 == hashlib.sha256(text.encode()).hexdigest()
    issue = loaded.issue_at(("providers", 0, "priority"), "later check")
    assert (issue.line, issue.column, issue.path) == (4, 15, "providers.openai.priority")
    assert str(issue) == f"{tmp_path / 'pool.yaml'}:4:15: providers.openai.priority: later check"


def test_spec_is_frozen(load: Load) -> None:
    spec = load("version: 1\nproviders: [{id: p}]\n").spec
    with pytest.raises(ValueError, match="frozen"):
        spec.providers[0].priority = 3  # type: ignore[misc]
    assert spec.provider("p") is spec.providers[0] and spec.provider("q") is None
