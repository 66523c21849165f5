"""Property tests of the loader: YAML round trips, and no crash on any input."""

from __future__ import annotations

import io
import string
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from pooldaemon.errors import ConfigError
from pooldaemon.spec import PoolSpec, format_duration, load_spec_bytes

ROOT = Path(__file__).parents[2]
VALID_FILES = [
    ROOT / "config" / "pool.yaml",
    *sorted((ROOT / "config" / "examples").glob("*.yaml")),
]

ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,15}", fullmatch=True)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)
model_ids = st.from_regex(r"[a-z0-9][a-z0-9.:/_-]{0,24}", fullmatch=True)
globs = st.from_regex(r"[a-z0-9.*?-]{1,12}", fullmatch=True)
prices = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)
# Display text: one printable line (the spec refuses control and bidi characters).
text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\u202e"),
    min_size=1,
    max_size=20,
).filter(str.strip)
# A plain value starting with ENC[ is taken for a damaged sealed one (and refused).
secrets = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Z")), min_size=1, max_size=30
).filter(lambda v: not v.startswith("ENC["))
# Header values: no control characters (the spec rejects line breaks and NUL).
header_values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
hex64 = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)


def durations(lo_ms: int = 1, hi_ms: int = 30 * 86_400_000) -> st.SearchStrategy[str]:
    return st.integers(lo_ms, hi_ms).map(lambda ms: format_duration(timedelta(milliseconds=ms)))


@st.composite
def ordered_durations(draw: st.DrawFn) -> tuple[str, str]:
    a, b = sorted(draw(st.lists(st.integers(1, 86_400_000), min_size=2, max_size=2)))
    return format_duration(timedelta(milliseconds=a)), format_duration(timedelta(milliseconds=b))


keys = st.one_of(
    st.builds(lambda v: {"env": v}, st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True)),
    st.builds(lambda v: {"file": v}, st.from_regex(r"/[a-z0-9/._-]{1,20}", fullmatch=True)),
    st.builds(lambda v: {"credential": v}, st.from_regex(r"[a-z0-9_.-]{1,12}", fullmatch=True)),
    st.builds(lambda v: {"value": v}, secrets),
).flatmap(
    lambda key: st.fixed_dictionaries(
        {k: st.just(v) for k, v in key.items()},
        optional={"label": text, "enabled": st.booleans()},
    )
)


def _key_source(key: dict[str, Any]) -> tuple[str, Any]:
    return next((n, key[n]) for n in ("env", "file", "credential", "value") if n in key)


price = st.fixed_dictionaries(
    {},
    optional={"input": prices, "output": prices, "cache_read": prices, "per_request": prices},
)

models = st.fixed_dictionaries(
    {"id": model_ids},
    optional={
        "name": text,
        "context_window": st.integers(100_000, 2_000_000),
        "max_output": st.integers(1, 100_000),
        "capabilities": st.lists(st.sampled_from(["chat", "vision", "tools", "json"]), max_size=4),
        "price": price,
    },
)


@st.composite
def providers(draw: st.DrawFn, pid: str) -> dict[str, Any]:
    fmt = draw(st.sampled_from(["openai", "anthropic", "google", "ollama", "responses", "auto"]))
    p: dict[str, Any] = {"id": pid, "format": fmt}
    if fmt == "auto" or draw(st.booleans()):
        host = draw(st.sampled_from(["relay.example.com", "127.0.0.1:8080", "10.1.2.3", "x.lan"]))
        p["base_url"] = f"https://{host}/v1"
    optional = {
        "name": text,
        "location": st.sampled_from(["cloud", "local"]),
        "priority": st.integers(-1000, 1000),
        "weight": st.integers(1, 1000),
        "enabled": st.booleans(),
        "tls_verify": st.booleans(),
        "keys": st.lists(keys, max_size=3, unique_by=_key_source),
        "allow_models": st.lists(globs, max_size=3),
        "models": st.lists(models, max_size=3, unique_by=lambda m: m["id"]),
        "headers": st.dictionaries(
            st.from_regex(r"X-[A-Za-z0-9-]{1,10}", fullmatch=True), header_values, max_size=2
        ),
        "timeout": durations(),
        "rate_limit": st.fixed_dictionaries({}, optional={"requests_per_minute": st.integers(1)}),
        "budget": st.fixed_dictionaries({}, optional={"usd_per_day": st.floats(0.01, 1e6)}),
        "model_params": st.fixed_dictionaries(
            {}, optional={"temperature": st.floats(0, 2), "top_p": st.floats(0, 1)}
        ),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            p[key] = draw(strategy)
    if "timeout" in p:
        # Sub-timeouts must fit in the total; leave them to their defaults.
        p.pop("connect_timeout", None)
    return p


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    pids = draw(st.lists(ids, max_size=4, unique=True))
    initial, maximum = draw(ordered_durations())
    doc: dict[str, Any] = {
        "version": 1,
        "routing": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "mode": st.sampled_from(["auto", "cloud", "local"]),
                    "strategy": st.sampled_from(["priority", "cost", "latency", "round_robin"]),
                    "max_attempts": st.integers(1, 20),
                    "sticky": st.booleans(),
                },
            )
        ),
        "cooldown": {"initial": initial, "max": maximum, "multiplier": draw(st.floats(1, 100))},
        "pricing": {
            "default": draw(price),
            "models": draw(
                st.lists(
                    st.fixed_dictionaries(
                        {"match": globs},
                        optional={"input": prices, "provider": st.sampled_from(pids)}
                        if pids
                        else {"input": prices},
                    ),
                    max_size=3,
                )
            ),
        },
        "usage": {"retention": draw(durations())},
        "providers": [draw(providers(pid)) for pid in pids],
    }
    if pids:
        targets = st.builds(lambda p, m: f"{p}/{m}", st.sampled_from(pids), model_ids)
        doc["aliases"] = draw(
            st.dictionaries(names.filter(lambda n: n not in pids), st.lists(targets, min_size=1))
        )
    doc["clients"] = draw(
        st.lists(
            st.fixed_dictionaries(
                {"name": names, "key_sha256": hex64},
                optional={"allow_models": st.lists(globs, max_size=2)},
            ),
            max_size=3,
            unique_by=(lambda c: c["name"], lambda c: c["key_sha256"]),
        )
    )
    return doc


def _dump(data: Any) -> bytes:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.BytesIO()
    yaml.dump(data, out)
    return out.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_generated_spec_round_trips_through_yaml(doc: dict[str, Any]) -> None:
    spec = PoolSpec.model_validate(doc)
    dumped = _dump(spec.model_dump(mode="json"))
    again = load_spec_bytes(dumped, "roundtrip.yaml", env={}).spec
    assert again.model_dump() == spec.model_dump()
    assert again == spec
    # And the dump of the reloaded spec is byte-identical: dumping is canonical.
    assert _dump(again.model_dump(mode="json")) == dumped


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID_FILES), st.data())
def test_mutated_valid_file_raises_only_config_error(path: Path, data: st.DataObject) -> None:
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8), label="mutations")):
        pos = data.draw(st.integers(0, len(raw)), label="position")
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]), label="op")
        byte = data.draw(
            st.one_of(st.integers(0, 255), st.sampled_from(list(b":-[]{}&*!|>'\"#%@`\n\t ,?"))),
            label="byte",
        )
        if op == "replace" and pos < len(raw):
            raw[pos] = byte
        elif op == "insert":
            raw.insert(pos, byte)
        elif pos < len(raw):
            del raw[pos]
    try:
        load_spec_bytes(bytes(raw), path.name, env={})
    except ConfigError as exc:
        assert exc.issues
        assert all(i.line >= 0 and i.message for i in exc.issues)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable + "\u00e9\u2028\x85\ufeff", max_size=300))
def test_any_text_raises_only_config_error(doc: str) -> None:
    try:
        load_spec_bytes(doc.encode("utf-8"), "any.yaml", env={})
    except ConfigError as exc:
        assert exc.issues
