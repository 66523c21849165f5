from __future__ import annotations

from pooldaemon.pool import ModelInfo, Price, RemotePrice, Snapshot
from pooldaemon.pool._builtin import load_builtin_table
from pooldaemon.pool._families import family_price
from tests.pool.conftest import provider, spec

PRICING = {
    "default": {"input": 9, "output": 99},
    "models": [
        {"match": "gpt-4o*", "input": 3, "output": 30},
        {"match": "gpt-4o-m*", "input": 2, "output": 20},
        {"match": "gpt-4o-mini", "input": 0.15, "output": 0.6, "cache_read": 0.075},
        {"match": "gpt-4o-mini", "provider": "relay", "input": 0.2, "output": 0.8},
        {"match": "gpt-4o-*", "provider": "relay", "input": 4, "output": 40},
        {"match": "claude-*", "provider": "local", "input": 1, "output": 1},
    ],
}


def _snap() -> Snapshot:
    return Snapshot.build(
        spec(
            providers=[
                provider("openai", "gpt-4o-mini"),
                provider("relay", "gpt-4o-mini"),
                provider("local", base_url="http://127.0.0.1:11434", format="ollama"),
                provider(
                    "static",
                    models=[{"id": "gpt-4o-mini", "price": {"input": 0.01, "output": 0.02}}],
                ),
            ],
            pricing=PRICING,
        )
    )


def test_provider_exact_beats_everything() -> None:
    snap = _snap()
    quote = snap.quote("relay", "gpt-4o-mini")
    assert (quote.source, quote.price.input, quote.matched) == (
        "provider_exact",
        0.2,
        "relay/gpt-4o-mini",
    )
    static = snap.quote("static", "gpt-4o-mini")
    assert (static.source, static.price) == ("provider_exact", Price(0.01, 0.02))


def test_model_exact_then_most_specific_glob() -> None:
    snap = _snap()
    assert snap.quote("openai", "gpt-4o-mini").source == "model_exact"
    quote = snap.quote("openai", "gpt-4o-mini-2024-07-18")
    assert (quote.source, quote.matched, quote.price.input) == ("glob", "gpt-4o-m*", 2)
    quote = snap.quote("openai", "gpt-4o-2024-08-06")
    assert (quote.source, quote.matched) == ("glob", "gpt-4o*")
    # Same literal length: the provider-specific glob wins.
    quote = snap.quote("relay", "gpt-4o-2024-08-06")
    assert (quote.matched, quote.price.input) == ("relay/gpt-4o-*", 4)


def test_local_models_are_free_unless_priced() -> None:
    snap = _snap()
    assert snap.quote("local", "llama3.2").source == "local"
    assert snap.quote("local", "llama3.2").price.is_free
    assert snap.quote("local", "claude-x").source == "glob"


def test_builtin_then_heuristic_then_default() -> None:
    snap = _snap()
    table = load_builtin_table()
    known = table.lookup("claude-sonnet-4-5")
    assert known is not None
    quote = snap.quote("openai", "claude-sonnet-4-5")
    assert (quote.source, quote.price) == ("builtin", known.price)
    family = family_price("claude-sonnet-99-experimental")
    assert family is not None
    quote = snap.quote("openai", "claude-sonnet-99-experimental")
    assert (quote.source, quote.price) == ("heuristic", family[0])
    quote = snap.quote("openai", "totally-custom-model")
    assert (quote.source, quote.price) == ("default", Price(9, 99))


def test_remote_prices_come_before_builtin() -> None:
    snap = Snapshot.build(
        spec(providers=[provider("openai", "gpt-4o")]),
        remote_prices={"gpt-4o": RemotePrice(Price(1.11, 2.22), "litellm")},
    )
    quote = snap.quote("openai", "gpt-4o")
    assert (quote.source, quote.label) == ("remote", "remote:litellm")
    assert snap.quote("openai", "openai/gpt-4o").price == Price(1.11, 2.22)


def test_targets_carry_their_quote() -> None:
    snap = _snap()
    (target,) = snap.resolve("relay/gpt-4o-mini")
    assert target.quote.price.input == 0.2
    assert isinstance(target.info, ModelInfo)
