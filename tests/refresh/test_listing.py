"""The pure listing layer: one page's request and the parse of one page, per format."""

from __future__ import annotations

import pytest

from pooldaemon.upstream._listing import (
    ListedModel,
    ListingShapeError,
    Page,
    listing_request,
    matches_shape,
    parse_page,
)
from tests.refresh.fake_catalogs import (
    KEY,
    anthropic_models,
    gemini_model,
    ollama_models,
    openai_models,
    provider_spec,
)


def test_openai_request_bearer_and_after() -> None:
    spec = provider_spec(base_url="https://relay.example/v1", headers={"X-Org": "o"})
    first = listing_request("openai", "https://relay.example/v1", spec, KEY)
    assert first.url == "https://relay.example/v1/models"
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.headers["X-Org"] == "o"
    assert first.params == ()
    nxt = listing_request("responses", "https://relay.example/v1/", spec, KEY, "m-2")
    assert nxt.url == "https://relay.example/v1/models"
    assert nxt.params == (("after", "m-2"),)


def test_anthropic_request_headers_and_paging() -> None:
    spec = provider_spec(format="anthropic", api_version="2024-01-01")
    req = listing_request("anthropic", "https://api.anthropic.com/v1", spec, KEY, "claude-x")
    assert req.url == "https://api.anthropic.com/v1/models"  # the redundant /v1 is tolerated
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2024-01-01"
    assert "Authorization" not in req.headers
    assert req.params == (("limit", "1000"), ("after_id", "claude-x"))
    default = listing_request("anthropic", "https://a.example", provider_spec(), KEY)
    assert default.headers["anthropic-version"] == "2023-06-01"


def test_google_request_version_and_token() -> None:
    spec = provider_spec(format="google")
    req = listing_request("google", "https://g.example/v1beta", spec, KEY, "tok")
    assert req.url == "https://g.example/v1beta/models"
    assert req.headers["x-goog-api-key"] == KEY
    assert req.params == (("pageSize", "1000"), ("pageToken", "tok"))
    v1 = listing_request("google", "https://g.example", provider_spec(api_version="v1"), None)
    assert v1.url == "https://g.example/v1/models"
    assert "x-goog-api-key" not in v1.headers


def test_ollama_request_no_auth_without_key() -> None:
    req = listing_request("ollama", "http://127.0.0.1:11434/api", provider_spec(), None)
    assert req.url == "http://127.0.0.1:11434/api/tags"
    assert "Authorization" not in req.headers
    assert req.params == ()


def test_auto_has_no_listing() -> None:
    with pytest.raises(ValueError, match="auto"):
        listing_request("auto", "https://x.example", provider_spec(), None)
    with pytest.raises(ValueError, match="auto"):
        parse_page("auto", {})


def test_parse_openai_plain_and_relay_pages() -> None:
    page = parse_page("openai", {"object": "list", "data": openai_models("gpt-4o", "o3")})
    assert page == Page((ListedModel("gpt-4o"), ListedModel("o3")), None)
    relay = parse_page(
        "openai", {"data": openai_models("a", "b"), "has_more": True, "last_id": "b"}
    )
    assert relay.next_token == "b"
    after = parse_page("openai", {"data": openai_models("a"), "has_more": True, "after": "cur"})
    assert after.next_token == "cur"
    implicit = parse_page("openai", {"data": openai_models("a", "z"), "has_more": True})
    assert implicit.next_token == "z"
    done = parse_page("openai", {"data": openai_models("a"), "has_more": False, "last_id": "a"})
    assert done.next_token is None


def test_parse_openai_relay_metadata() -> None:
    entry = {
        "id": "anthropic/claude-sonnet-4.5",
        "name": "Claude Sonnet 4.5",
        "context_length": 200000,
        "top_provider": {"max_completion_tokens": 64000},
    }
    groq = {"id": "llama-3.3-70b", "context_window": 131072, "max_completion_tokens": 32768}
    page = parse_page("openai", {"data": [entry, groq, {"id": ""}, "junk", {"id": 5}]})
    assert page.models == (
        ListedModel("anthropic/claude-sonnet-4.5", "Claude Sonnet 4.5", 200000, 64000),
        ListedModel("llama-3.3-70b", None, 131072, 32768),
    )


def test_parse_anthropic() -> None:
    page = parse_page(
        "anthropic",
        {"data": anthropic_models("claude-a", "claude-b"), "has_more": True, "last_id": "claude-b"},
    )
    assert page.models[0] == ListedModel("claude-a", name="CLAUDE-A")
    assert page.next_token == "claude-b"
    last = parse_page("anthropic", {"data": anthropic_models("c"), "has_more": False})
    assert last.next_token is None


def test_parse_google_strips_prefix_and_reads_limits() -> None:
    data = {
        "models": [
            gemini_model("gemini-2.0-flash", input_limit=1000, output_limit=10),
            gemini_model("text-embedding-004", ("embedContent",)),
            {"name": "models/bare"},
        ],
        "nextPageToken": "next",
    }
    page = parse_page("google", data)
    assert page.models == (
        ListedModel("gemini-2.0-flash", "Gemini-2.0-Flash", 1000, 10, True),
        ListedModel("text-embedding-004", "Text-Embedding-004", 1_048_576, 8192, False),
        ListedModel("bare"),
    )
    assert page.next_token == "next"
    assert parse_page("google", {"models": []}).next_token is None


def test_parse_ollama() -> None:
    page = parse_page("ollama", {"models": [*ollama_models("llama3.2:latest"), {"model": "q:1b"}]})
    assert [m.id for m in page.models] == ["llama3.2:latest", "q:1b"]
    assert page.next_token is None


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("openai", {"models": []}),
        ("openai", []),
        ("anthropic", {"data": "x"}),
        ("google", {"data": []}),
        ("ollama", None),
    ],
)
def test_wrong_shape_raises(fmt: str, data: object) -> None:
    with pytest.raises(ListingShapeError):
        parse_page(fmt, data)


def test_shapes_tell_formats_apart() -> None:
    openai = {"object": "list", "data": openai_models("gpt-4o")}
    anthropic = {"data": anthropic_models("claude"), "has_more": False}
    google = {"models": [gemini_model("gemini-2.0-flash")]}
    ollama = {"models": ollama_models("llama3.2:latest")}
    samples = {"openai": openai, "anthropic": anthropic, "google": google, "ollama": ollama}
    for fmt, data in samples.items():
        assert [f for f in samples if matches_shape(f, data)] == [fmt]
    assert matches_shape("responses", openai)
    assert matches_shape("anthropic", {"data": [], "has_more": False})
    assert not matches_shape("anthropic", {"data": []})
    assert not matches_shape("openai", {"error": "nope"})
    assert not matches_shape("auto", openai)
