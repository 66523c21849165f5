from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooldaemon.spec import KeySpec, format_duration, parse_duration
from pooldaemon.spec._types import glob_problem, provider_id_problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("12h", timedelta(hours=12)),
        ("90d", timedelta(days=90)),
        ("1h30m", timedelta(minutes=90)),
        ("1d2h3m4s5ms", timedelta(days=1, hours=2, minutes=3, seconds=4, milliseconds=5)),
        ("0s", timedelta()),
        (" 10s ", timedelta(seconds=10)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (30, "expected a duration string"),
        (1.5, "expected a duration string"),
        (True, "expected a duration string"),
        ("", "empty duration"),
        ("30", "invalid duration"),
        ("30sec", "invalid duration"),
        ("s", "invalid duration"),
        ("-5s", "invalid duration"),
        ("1.5h", "invalid duration"),
        ("5m1h", "largest first"),
        ("5m5m", "largest first"),
        ("1 h", "invalid duration"),
        ("99999d", "longer than 10 years"),
    ],
)
def test_parse_duration_rejects(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_duration(value)


@given(st.integers(min_value=0, max_value=3650 * 86_400_000))
def test_duration_text_round_trips(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    text = format_duration(value)
    assert parse_duration(text) == value
    assert format_duration(parse_duration(text)) == text


def test_format_duration_is_canonical() -> None:
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(timedelta(days=1, milliseconds=1)) == "1d1ms"
    assert format_duration(timedelta()) == "0s"


@pytest.mark.parametrize(
    "pattern", ["gpt-4o", "gpt-4o*", "claude-?-*", "llama[23]*", "[!x]*", "a[]]b", "*"]
)
def test_good_globs(pattern: str) -> None:
    assert glob_problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty"),
        ("gpt 4o", "whitespace"),
        ("gpt\t4o", "whitespace"),
        ("gpt-[4o", "without a matching ']'"),
        ("gpt-4o]", "without a matching '['"),
        ("a[!", "without a matching ']'"),
    ],
)
def test_bad_globs(pattern: str, fragment: str) -> None:
    problem = glob_problem(pattern)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize("good", ["openai", "a", "0", "my-relay_2", "x" * 64])
def test_safe_provider_ids(good: str) -> None:
    assert provider_id_problem(good) is None


@pytest.mark.parametrize(
    "bad", ["", "OpenAI", "-x", "_x", "a/b", "..", "a.b", "a b", "ünï", "x" * 65, "a\\b"]
)
def test_unsafe_provider_ids(bad: str) -> None:
    assert provider_id_problem(bad) is not None


def test_key_source_never_shows_the_value() -> None:
    plain = KeySpec(value="sk-live-123456")
    sealed = KeySpec(value="ENC[v1:abcd:efgh]")
    assert plain.source == "value:plain" and not plain.is_sealed
    assert sealed.source == "value:sealed" and sealed.is_sealed
    assert "sk-live" not in repr(plain)
    assert KeySpec(env="X").source == "env:X"
    assert KeySpec(credential="c").source == "credential:c"
    assert KeySpec(file="/k").source == "file:/k"
