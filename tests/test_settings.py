from __future__ import annotations

import os
from pathlib import Path

import pytest

from pooldaemon.errors import PoolError, SettingsError
from pooldaemon.settings import Settings, load_settings, split_host_port


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("POOLDAEMON_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert s.config == Path("config/pool.yaml")
    assert s.state_dir == Path("state")
    assert (s.listen, s.admin_listen) == ("127.0.0.1:8790", "127.0.0.1:8791")
    assert s.admin_token_value() is None
    assert (s.log_level, s.log_format) == ("info", "text")
    assert s.secret_key_files == ()
    assert s.max_request_bytes == 32 * 1024 * 1024
    assert s.max_response_bytes == 64 * 1024 * 1024


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLDAEMON_CONFIG", "/etc/pooldaemon/pool.yaml")
    monkeypatch.setenv("POOLDAEMON_LISTEN", "0.0.0.0:9000")
    monkeypatch.setenv("POOLDAEMON_LOG_LEVEL", "DEBUG")
    s = load_settings()
    assert s.config == Path("/etc/pooldaemon/pool.yaml")
    assert (s.listen, s.log_level) == ("0.0.0.0:9000", "debug")
    s = load_settings(listen="127.0.0.1:9100", config=None)
    assert s.listen == "127.0.0.1:9100"
    assert s.config == Path("/etc/pooldaemon/pool.yaml")  # None means "flag not given"


def test_error_names_field_and_environment_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLDAEMON_LISTEN", "localhost")
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert isinstance(exc.value, PoolError) and isinstance(exc.value, ValueError)
    assert "listen (from environment variable POOLDAEMON_LISTEN)" in str(exc.value)
    assert "HOST:PORT" in str(exc.value)


def test_error_names_flag_source() -> None:
    with pytest.raises(SettingsError, match=r"admin_listen \(from --admin-listen\).*port"):
        load_settings(admin_listen="127.0.0.1:99999")


def test_log_format_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLDAEMON_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="log_format"):
        load_settings()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/etc/pooldaemon/pool.key", (Path("/etc/pooldaemon/pool.key"),)),
        ('["/a/pool.key", "/b/old.key"]', (Path("/a/pool.key"), Path("/b/old.key"))),
        ("", ()),
    ],
)
def test_secret_key_files(monkeypatch: pytest.MonkeyPatch, raw: str, expected: object) -> None:
    monkeypatch.setenv("POOLDAEMON_SECRET_KEY_FILES", raw)
    assert load_settings().secret_key_files == expected


def test_secret_key_files_bad_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOLDAEMON_SECRET_KEY_FILES", '["/a", ')
    with pytest.raises(SettingsError, match=r"secret_key_files.*not a JSON list"):
        load_settings()


def test_admin_token_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POOLDAEMON_ADMIN_TOKEN", "t0ken")
    s = load_settings()
    assert s.admin_token_value() == "t0ken"
    assert "t0ken" not in repr(s)
    token_file = tmp_path / "admin.token"
    token_file.write_text("from-file\n")
    monkeypatch.delenv("POOLDAEMON_ADMIN_TOKEN")
    monkeypatch.setenv("POOLDAEMON_ADMIN_TOKEN_FILE", str(token_file))
    assert load_settings().admin_token_value() == "from-file"


def test_admin_token_file_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(SettingsError, match="is empty"):
        Settings(admin_token_file=empty).admin_token_value()
    with pytest.raises(SettingsError, match="cannot read"):
        Settings(admin_token_file=tmp_path / "missing").admin_token_value()
    monkeypatch.setenv("POOLDAEMON_ADMIN_TOKEN", "x")
    with pytest.raises(SettingsError, match="not both"):
        load_settings(admin_token_file=empty)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:8790", ("127.0.0.1", 8790)),
        ("[::1]:8791", ("::1", 8791)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("nas.local:8080", ("nas.local", 8080)),
    ],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize("address", ["8790", ":8790", "::1:8790", "host:0", "host:x", "host:"])
def test_split_host_port_rejects(address: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(address)


def test_admin_token_from_the_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith("POOLDAEMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_settings().admin_token_value() is None  # no credential of that name
    (tmp_path / "admin-token").write_text("token-from-credential-0123\n")
    assert load_settings().admin_token_value() == "token-from-credential-0123"
    monkeypatch.setenv("POOLDAEMON_ADMIN_TOKEN", "explicit-token-wins-0123")
    assert load_settings().admin_token_value() == "explicit-token-wins-0123"
