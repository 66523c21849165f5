from __future__ import annotations

from pooldaemon.pool import ModelInfo, Snapshot
from tests.pool.conftest import provider, snapshot, spec


def test_index_has_bare_and_qualified_names() -> None:
    snap = snapshot(provider("a", "gpt-4o", "gpt-4o-mini"), provider("b", "gpt-4o"))
    assert [t.provider.id for t in snap.resolve("gpt-4o")] == ["a", "b"]
    assert [t.provider.id for t in snap.resolve("b/gpt-4o")] == ["b"]
    assert snap.resolve("b/gpt-4o-mini") == ()
    assert snap.resolve("nothing") == ()
    assert set(snap.names) == {"gpt-4o", "gpt-4o-mini", "a/gpt-4o", "a/gpt-4o-mini", "b/gpt-4o"}


def test_allowlist_filters_models_with_globs() -> None:
    snap = snapshot(provider("a", "gpt-4o", "gpt-4o-mini", "o3", allow_models=["gpt-4o*"]))
    assert set(snap.by_id["a"].models) == {"gpt-4o", "gpt-4o-mini"}
    assert snap.resolve("o3") == ()


def test_exact_allowlist_entries_are_models() -> None:
    snap = snapshot(provider("a", allow_models=["gpt-4o", "claude-*"]))
    assert set(snap.by_id["a"].models) == {"gpt-4o"}
    assert [t.model for t in snap.resolve("gpt-4o")] == ["gpt-4o"]


def test_non_chat_models_stay_out_of_chat_routing() -> None:
    p = provider("a", "gpt-4o", "text-embedding-3-small", "whisper-1", "tts-1", "dall-e-3")
    p["models"].append({"id": "my-embedder", "capabilities": ["embeddings"]})
    snap = snapshot(p)
    assert snap.resolve("gpt-4o")
    for name in ("text-embedding-3-small", "whisper-1", "tts-1", "dall-e-3", "my-embedder"):
        assert snap.resolve(name) == (), name
        assert name in snap.by_id["a"].models  # still known, for listing


def test_aliases_resolve_in_order_without_duplicates() -> None:
    snap = snapshot(
        provider("a", "gpt-4o-mini"),
        provider("b", "llama3.2", "gpt-4o-mini"),
        aliases={"fast": ["b/llama3.2", "gpt-4o-mini", "a/gpt-4o-mini"]},
    )
    assert [(t.provider.id, t.model) for t in snap.resolve("fast")] == [
        ("b", "llama3.2"),
        ("a", "gpt-4o-mini"),
        ("b", "gpt-4o-mini"),
    ]
    assert "fast" in snap.names


def test_provider_without_model_list_takes_any_allowed_id() -> None:
    snap = snapshot(
        provider("known", "gpt-4o"),
        provider("relay", allow_models=["gpt-*", "claude-*"]),
        provider("open"),
    )
    assert [t.provider.id for t in snap.resolve("gpt-4o")] == ["known", "relay", "open"]
    assert [t.provider.id for t in snap.resolve("claude-x")] == ["relay", "open"]
    assert [t.provider.id for t in snap.resolve("mistral-large")] == ["open"]
    assert [t.provider.id for t in snap.resolve("relay/gpt-5")] == ["relay"]
    assert snap.resolve("relay/mistral") == ()
    assert snap.resolve("text-embedding-3-small") == ()


def test_discovered_catalog_merges_under_the_spec() -> None:
    snap = Snapshot.build(
        spec(providers=[provider("a", "m1", allow_models=["m*"])]),
        {"a": [ModelInfo("m1", context_window=1), ModelInfo("m2"), ModelInfo("x9")]},
    )
    models = snap.by_id["a"].models
    assert set(models) == {"m1", "m2"}
    assert models["m1"].context_window is None  # the spec's declaration wins


def test_keys_get_stable_ids_that_reveal_nothing() -> None:
    p = provider("a", "m")
    p["keys"] = [{"value": "sk-secret-1"}, {"env": "A_KEY", "label": "main"}]
    one = snapshot(p).by_id["a"].keys
    two = snapshot(p).by_id["a"].keys
    assert [k.key_id for k in one] == [k.key_id for k in two]
    assert one[0].key_id != one[1].key_id
    assert all("secret" not in repr(k) and "secret" not in k.key_id for k in one)
    assert one[1].label == "main" and one[1].source == "env:A_KEY"


def test_snapshot_is_read_only() -> None:
    snap = snapshot(provider("a", "m"))
    try:
        snap.index["x"] = ()  # type: ignore[index]
    except TypeError:
        pass
    else:
        raise AssertionError("index is writable")


def test_exact_allowlist_names_do_not_close_an_unknown_catalog() -> None:
    snap = snapshot(provider("openai", allow_models=["gpt-4o*", "o3-mini"]))
    assert set(snap.by_id["openai"].models) == {"o3-mini"}  # listed for /v1/models
    assert [t.model for t in snap.resolve("gpt-4o-mini")] == ["gpt-4o-mini"]
    assert [t.model for t in snap.resolve("openai/gpt-4o-mini")] == ["gpt-4o-mini"]
    assert len(snap.resolve("o3-mini")) == 1
    assert snap.resolve("o1") == ()
    discovered = Snapshot.build(
        spec(providers=[provider("openai", allow_models=["gpt-4o*", "o3-mini"])]),
        {"openai": [ModelInfo("gpt-4o")]},
    )
    assert discovered.resolve("gpt-4o-mini") == ()  # the catalog is known now: it decides
