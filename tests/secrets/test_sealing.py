"""The envelope: seal and open, and every way a sealed value is refused (never showing it)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import SealedBox

from pooldaemon.errors import SealedValueError
from pooldaemon.secrets import (
    check_context,
    check_envelope,
    generate_private_key,
    key_id,
    open_sealed,
    parse_envelope,
    seal,
)
from pooldaemon.spec import KeySpec

KEY = generate_private_key()
OTHER = generate_private_key()
KEYS = {key_id(KEY.public_key): KEY}
SECRET = "sk-proj-Secret0123456789abcdef"


def _refused(value: str, location: str, keys: object = None) -> str:
    with pytest.raises(SealedValueError) as exc:
        open_sealed(value, location, KEYS if keys is None else keys)  # type: ignore[arg-type]
    message = str(exc.value)
    assert SECRET not in message
    return message


def test_round_trip_and_shape() -> None:
    value = seal(KEY.public_key, "providers.openai", SECRET)
    kid = key_id(KEY.public_key)
    assert value.startswith(f"ENC[v1:{kid}:providers.openai:") and value.endswith("]")
    assert SECRET not in value
    assert KeySpec(value=value).is_sealed  # the spec takes it as a sealed value
    assert open_sealed(value, "providers.openai", KEYS) == SECRET
    # Sealing is randomised (an ephemeral key each time): equal secrets do not show.
    assert seal(KEY.public_key, "providers.openai", SECRET) != value


def test_client_context_with_a_colon() -> None:
    value = seal(KEY.public_key, "clients.team:alice", SECRET)
    envelope = parse_envelope(value)
    assert (envelope.version, envelope.context) == (1, "clients.team:alice")
    assert open_sealed(value, "clients.team:alice", KEYS) == SECRET


@settings(max_examples=40, deadline=None)
@given(
    secret=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, categories=("L", "N", "P", "S")),
        min_size=1,
        max_size=200,
    ),
    provider=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True),
)
def test_round_trip_any_secret(secret: str, provider: str) -> None:
    if secret != secret.strip():
        return
    value = seal(KEY.public_key, f"providers.{provider}", secret)
    assert KeySpec(value=value).is_sealed
    assert open_sealed(value, f"providers.{provider}", KEYS) == secret


def test_moved_to_another_provider() -> None:
    value = seal(KEY.public_key, "providers.openai", SECRET)
    assert (
        _refused(value, "providers.backup")
        == "sealed for providers.openai, not for providers.backup"
    )


def test_clear_context_edited_to_match() -> None:
    value = seal(KEY.public_key, "providers.openai", SECRET)
    edited = value.replace("providers.openai", "providers.backup")
    assert _refused(edited, "providers.backup") == (
        "the envelope was edited: it says providers.backup, but the value was sealed for "
        "providers.openai"
    )


def test_unknown_key_id_names_both_ids() -> None:
    value = seal(OTHER.public_key, "providers.openai", SECRET)
    message = _refused(value, "providers.openai")
    assert message == (
        f"sealed to key id {key_id(OTHER.public_key)}, for which no private key is loaded "
        f"(loaded: {key_id(KEY.public_key)})"
    )
    assert "loaded: none" in _refused(value, "providers.openai", {})


def test_wrong_private_key_under_the_id() -> None:
    value = seal(KEY.public_key, "providers.openai", SECRET)
    message = _refused(value, "providers.openai", {key_id(KEY.public_key): OTHER})
    assert message.startswith("the sealed value is damaged (truncated or edited)")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda v: v[:-1], id="last-bracket-cut"),
        pytest.param(lambda v: v[:-11] + "]", id="data-truncated"),
        pytest.param(lambda v: v[:60] + "]", id="data-mostly-gone"),
        pytest.param(lambda v: v[:-6] + ("A" if v[-6] != "A" else "B") + v[-5:], id="bit-flip"),
        pytest.param(lambda v: v.replace(":providers", "providers"), id="field-lost"),
        pytest.param(lambda v: v.replace("ENC[v1:", "ENC[v1:0"), id="key-id-edited"),
        pytest.param(lambda v: v[:-2] + "!]", id="not-base64url"),
        pytest.param(lambda v: v[:-1] + "A]" if len(v) % 4 else v[:-1] + "AAAAA]", id="bad-len"),
    ],
)
def test_damaged(damage: object) -> None:
    value = seal(KEY.public_key, "providers.openai", SECRET)
    damaged = damage(value)  # type: ignore[operator]
    assert damaged != value
    message = _refused(damaged, "providers.openai")
    assert "damaged" in message or "no private key" in message, message


def test_other_versions_and_shapes() -> None:
    value = seal(KEY.public_key, "providers.openai", SECRET)
    assert _refused(value.replace("ENC[v1:", "ENC[v2:"), "providers.openai") == (
        "sealed with format v2; this build reads v1"
    )
    assert "not a sealed value" in _refused("sk-plain", "providers.openai")
    assert "the context" in _refused(value.replace("providers.openai", "nowhere.x"), "x")


def test_a_box_that_is_not_ours() -> None:
    kid = key_id(KEY.public_key)

    def boxed(payload: bytes) -> str:
        data = base64.urlsafe_b64encode(SealedBox(KEY.public_key).encrypt(payload))
        return f"ENC[v1:{kid}:providers.openai:{data.decode().rstrip('=')}]"

    assert "not a pooldaemon sealed secret" in _refused(boxed(b"hello"), "providers.openai")
    wrong_version = json.dumps({"for": "providers.openai", "secret": SECRET, "v": 7}).encode()
    assert "version" in _refused(boxed(wrong_version), "providers.openai")
    empty = json.dumps({"for": "providers.openai", "secret": "", "v": 1}).encode()
    assert "empty" in _refused(boxed(empty), "providers.openai")


def test_check_envelope_needs_no_key() -> None:
    value = seal(OTHER.public_key, "providers.openai", SECRET)
    assert check_envelope(value, "providers.openai").key_id == key_id(OTHER.public_key)
    with pytest.raises(SealedValueError, match=r"not for providers\.b$"):
        check_envelope(value, "providers.b")


@pytest.mark.parametrize(
    "context", ["providers.OpenAI", "providers.", "provider.x", "clients.-x", "x", "providers.a b"]
)
def test_bad_contexts(context: str) -> None:
    with pytest.raises(SealedValueError, match=r"is not providers\.<id> or clients\.<name>"):
        check_context(context)
    with pytest.raises(SealedValueError):
        seal(KEY.public_key, context, SECRET)


@pytest.mark.parametrize("secret", ["", " sk", "sk ", "sk\nx", "a\x00b"])
def test_unusable_secrets(secret: str) -> None:
    with pytest.raises(SealedValueError) as exc:
        seal(KEY.public_key, "providers.openai", secret)
    assert secret.strip() == "" or secret.strip() not in str(exc.value)
