from __future__ import annotations

import email.utils
import time

import pytest

from pooldaemon.server._replies import display_hash, redact, request_id, retry_after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "17"}, 17.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "2500", "Retry-After": "9"}, 2.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers) == expected


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    value = retry_after({"Retry-After": when})
    assert value is not None and 55 <= value <= 61


def test_redact_and_display_hash() -> None:
    secret = "sk-proj-abcdefghijklmnop1234"
    assert display_hash(secret) == "sk-proj-...1234"
    assert redact(f"bad key {secret}!", [secret, ""]) == "bad key sk-proj-...1234!"
    assert "short12345" not in display_hash("short12345")


def test_request_id_is_kept_only_when_safe() -> None:
    assert request_id({"x-request-id": "abc-123"}) == "abc-123"
    generated = request_id({"x-request-id": "bad id\nwith newline"})
    assert len(generated) == 16 and "\n" not in generated
