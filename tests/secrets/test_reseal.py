"""Reseal: every sealed value moves to the new key; every other byte of the file stays."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pooldaemon.errors import ConfigError
from pooldaemon.secrets import (
    generate_private_key,
    key_id,
    reseal_bytes,
    seal,
    sealed_fields,
    unseal_keys,
    write_in_place,
)
from pooldaemon.spec import load_spec_bytes
from tests.secrets.helpers import keyring

OLD, OLDER, NEW = generate_private_key(), generate_private_key(), generate_private_key()
SECRETS = ["sk-one-111111", "sk-two-222222", "sk-three-33333", "sk-four-44444", "sk-five-5555"]


# A file meant to trip a dumper: comments everywhere, odd indentation, flow
# collections, every quoting style, an anchor, a comment holding a copy of a value,
# a line of spaces, trailing spaces and no final newline. <<N>> is sealed value N;
# <<was>> a copy of value 0 in a comment (it must stay the old text).
TEMPLATE = """\
# yaml-language-server: $schema=../schemas/pool.schema.json
---   # explicit document start
version:    1      # odd spacing kept

routing: { mode: auto,   strategy: priority }   # flow mapping
providers:
   # indented comment
   -   id: openai        # three-space sequence indent
       models: &models [ {id: gpt-4o}, {id: 'gpt-4o-mini'} ]
       keys:
         - value: <<0>>   # rotated 2024; was <<was>>
           label: main   \n         - {value: '<<1>>', label: single}
         - value:   "<<2>>"
  \n         # a comment between keys
         - value: >-
             <<3>>
         - env: OPENAI_API_KEY   # not sealed: untouched
   - id: backup
     base_url: https://relay.example.com/v1   # ENC[v1:0000000000000000:x:AAAA] here
     models: *models
     keys: [ {value:  "<<4>>" , enabled: false} ]
# the end, no final newline"""


def _render(values: list[str], was: str) -> str:
    text = TEMPLATE.replace("<<was>>", was)
    for i, value in enumerate(values):
        text = text.replace(f"<<{i}>>", value)
    return text


CONTEXTS = ["providers.openai"] * 4 + ["providers.backup"]


def _sealed_to(keys: list[object]) -> list[str]:
    return [
        seal(k.public_key, c, s)  # type: ignore[attr-defined]
        for k, c, s in zip(keys, CONTEXTS, SECRETS, strict=True)
    ]


@pytest.mark.parametrize("variant", ["lf", "crlf", "bom"])
def test_only_the_values_change(variant: str) -> None:
    # Values sealed to two old keys (a previous rotation half done) move to NEW.
    old_values = _sealed_to([OLD, OLDER, OLD, OLDER, OLD])
    text = _render(old_values, old_values[0])
    if variant == "crlf":
        text = text.replace("\n", "\r\n")
    raw = ("\ufeff" if variant == "bom" else "").encode() + text.encode()

    result = reseal_bytes(raw, "pool.yaml", keyring(OLD, OLDER), NEW.public_key)

    loaded = load_spec_bytes(result.data, "pool.yaml")
    new_values = [f.value for f in sealed_fields(loaded)]
    assert len(new_values) == 5
    assert all(v.startswith(f"ENC[v1:{key_id(NEW.public_key)}:") for v in new_values)
    expected = _render(new_values, old_values[0])
    if variant == "crlf":
        expected = expected.replace("\n", "\r\n")
    expected_raw = ("\ufeff" if variant == "bom" else "").encode() + expected.encode()
    assert result.data == expected_raw  # byte for byte, comments and layout included
    assert f"was {old_values[0]}" in result.data.decode()  # a copy in a comment is left alone
    assert result.key_id == key_id(NEW.public_key)
    assert result.changed == (
        "providers.openai.keys[0].value",
        "providers.openai.keys[1].value",
        "providers.openai.keys[2].value",
        "providers.openai.keys[3].value",
        "providers.backup.keys[0].value",
    )
    opened = unseal_keys(loaded, keyring(NEW))
    assert sorted(opened.values()) == sorted(SECRETS)


def test_rerun_is_a_no_op_without_the_new_private_key() -> None:
    first = reseal_bytes(
        _render(_sealed_to([OLD] * 5), "x").encode(), "f", keyring(OLD), NEW.public_key
    )
    again = reseal_bytes(first.data, "f", keyring(), NEW.public_key)
    assert again.data == first.data and again.changed == () and len(again.unchanged) == 5


def test_refuses_what_does_not_open_where_it_sits() -> None:
    values = _sealed_to([OLD] * 5)
    values[4] = values[0]  # the openai key pasted into backup: reseal must not launder it
    values[2] = seal(NEW.public_key, "providers.backup", "sk")  # already new, wrong place
    values[1] = seal(OLDER.public_key, "providers.openai", "sk-x")  # a key we do not hold
    with pytest.raises(ConfigError) as exc:
        reseal_bytes(_render(values, "x").encode(), "pool.yaml", keyring(OLD), NEW.public_key)
    issues = [str(i) for i in exc.value.issues]
    assert [i.split(": ")[1] for i in issues] == [
        "providers.openai.keys[1].value",
        "providers.openai.keys[2].value",
        "providers.backup.keys[0].value",
    ]
    assert "no private key is loaded" in issues[0]
    assert "sealed for providers.backup, not for providers.openai" in issues[1]
    assert "sealed for providers.openai, not for providers.backup" in issues[2]
    assert not any(s in "".join(issues) for s in SECRETS)


def test_write_in_place_keeps_mode_and_symlink(tmp_path: Path) -> None:
    real = tmp_path / "repo" / "pool.yaml"
    real.parent.mkdir()
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "pool.yaml"
    link.symlink_to(real)
    write_in_place(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert real.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in real.parent.iterdir()] == ["pool.yaml"]  # no temp file left
    assert os.readlink(link) == str(real)
